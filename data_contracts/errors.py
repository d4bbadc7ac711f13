"""One base for every error petcap raises on purpose: what is wrong, where, and what to do about it.

The CLI prints ``str(error)`` as one line and exits with ``exit_code`` (2: a usage or prerequisite mistake the
user must fix, 1: a failure); Prefect tasks retry only errors whose ``retryable`` is true. Subclasses keep their
own fields; every instance pickles with them, so it crosses Dask and process-pool boundaries.
"""

from __future__ import annotations


class PetcapError(Exception):
    """An error a user can act on: a message, optionally the file at fault, a short reason code and a hint."""

    exit_code: int = 1
    retryable: bool = False

    def __init__(self, message: str, *, path: str | None = None, reason: str | None = None,
                 hint: str | None = None):
        self.message, self.path, self.reason, self.hint = message, path, reason, hint
        super().__init__(self._line())

    def _line(self) -> str:
        head = f"{self.path}: " if self.path else ""
        code = f"{self.reason}: " if self.reason else ""
        tail = f" ({self.hint})" if self.hint else ""
        return f"{head}{code}{self.message}{tail}"

    def __reduce__(self):
        return _rebuild, (type(self), dict(self.__dict__))


def _rebuild(cls: type, state: dict) -> PetcapError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, err._line())
    return err


class UsageError(PetcapError):
    """The command, an argument or a setting is wrong; nothing was changed."""

    exit_code = 2


class PrerequisiteError(PetcapError):
    """Something that must exist or run first is missing (a stage, a model version, enough patients)."""

    exit_code = 2


class TransientError(PetcapError):
    """A failure that may pass on a retry (a server unreachable, a timeout)."""

    retryable = True


def is_retryable(error: BaseException) -> bool:
    """Whether a retry can help: a ``TransientError`` (``retryable``), or the standard library's own transient
    kinds (``ConnectionError``, ``TimeoutError``: a server away, a socket that timed out) raised by a library
    below us. Everything else — a usage or prerequisite mistake, bad input, a bug — fails at once."""
    if isinstance(error, PetcapError):
        return error.retryable
    return isinstance(error, (ConnectionError, TimeoutError))
