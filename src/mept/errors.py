"""User-facing errors.

Anything a user can cause (a bad flag, a broken file, a mismatched checkpoint)
raises :class:`MeptError` with a one-line message that names the problem and
what to do. The CLI prints it as ``error: ...`` and exits with status 2 instead
of showing a stack trace from deep inside torch.
"""


class MeptError(Exception):
    """A problem with the user's input, config, data or files."""
