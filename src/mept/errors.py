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


def os_error_line(exc: OSError) -> str:
    """A failed file operation (a full disk, a read-only folder, a vanished file) as the user's one line.

    Shared by the CLI and the benchmark scripts (``benchmarks/script.py``), so both name the path alike.
    """
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}; check the path, its permissions and free space"


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped ("" when there is none).

    Exceptions from torch, the hub or tarfile can span pages, start with a blank line or be empty; our messages
    are one line, so every place that quotes one goes through here (an empty message must not become an
    IndexError that hides the real problem).
    """
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def exception_line(exc: BaseException) -> str:
    """An exception quoted inside one of our one-line messages: its first line, or its class when it says nothing."""
    return first_line(str(exc)) or type(exc).__name__


def internal_error_line(exc: BaseException) -> str:
    """A bug of ours as one line for the user; the traceback is shown on request (``MEPT_DEBUG=1``)."""
    first = first_line(str(exc))
    return f"internal error ({type(exc).__name__}: {first}); rerun with MEPT_DEBUG=1 for the traceback and report it"


class MeptWarning(UserWarning):
    """Something doubtful that still runs: the user should know, but may have meant it."""


def warn(message: str) -> None:
    """Warn the user; through the API a normal Python warning, in the CLI one ``warning: ...`` line."""
    import warnings

    warnings.warn(message, MeptWarning, stacklevel=2)
