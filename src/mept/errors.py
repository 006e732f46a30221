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


def internal_error_line(exc: BaseException) -> str:
    """A bug of ours as one line for the user; the traceback is shown on request (``MEPT_DEBUG=1``)."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error ({type(exc).__name__}: {first}); rerun with MEPT_DEBUG=1 for the traceback and report it"


class MeptWarning(UserWarning):
    """Something doubtful that still runs: the user should know, but may have meant it."""


def warn(message: str) -> None:
    """Warn the user; through the API a normal Python warning, in the CLI one ``warning: ...`` line."""
    import warnings

    warnings.warn(message, MeptWarning, stacklevel=2)
