"""User-facing errors and warnings.

Anything a user can cause (a bad flag, a broken file, a mismatched checkpoint)
raises :class:`MeptError` with a one-line message that names the problem and
what to do. The CLI prints it as ``error: ...`` and exits with status 2 instead
of showing a stack trace from deep inside torch. Something doubtful that still
runs (a validation label never seen in training, an unfinished run) is a
:class:`MeptWarning`, which the CLI prints as one ``warning: ...`` line.
"""


class MeptError(Exception):
    """A problem with the user's input, config, data or files."""


class MeptWarning(UserWarning):
    """Something doubtful that still runs: the user should know, but may have meant it."""


def warn(message: str) -> None:
    """Warn the user; through the API a normal Python warning, in the CLI one ``warning: ...`` line."""
    import warnings

    warnings.warn(message, MeptWarning, stacklevel=2)
