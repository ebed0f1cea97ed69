"""Errors that end in one clear line for the person at the terminal, never a traceback.

Each error also says what to fix (``fix``): an ERROR row in the summary points at access, configuration or
connectivity, where a FAIL row points at a remediation.
"""


class OpsError(Exception):
    """Base class: ``str(error)`` is the whole message a user sees."""

    def __init__(self, message: str, *, fix: str | None = None):
        super().__init__(message)
        self.fix = fix or "see the message"

    def with_fix(self) -> str:
        """The message and, where it says more than the message, its fix on the message's first line (a message of
        several lines lists its parts below it, as a file's mistakes)."""
        if not self.fix or self.fix == "see the message":
            return str(self)
        first, *rest = str(self).split("\n")
        return "\n".join([f"{first} ({self.fix})", *rest])


class ConfigError(OpsError):
    """An environment file, a flag or a secret reference is wrong."""

    def __init__(self, message: str, *, fix: str | None = None):
        super().__init__(message, fix=fix or "correct the environment file or the variable it names")


class DependencyError(OpsError):
    """A dependency could not be measured: unreachable, timed out, refused, or answered nonsense."""

    def __init__(self, dependency: str, detail: str, *, reachable: bool = False, fix: str | None = None):
        if fix is None:
            fix = (f"check the credentials and permissions {dependency} sees for this role" if reachable else
                   f"check that {dependency} is up and reachable from here (endpoint, network, timeouts.*)")
        super().__init__(f"{dependency} {'refused the request' if reachable else 'unreachable'}: {detail}", fix=fix)
        self.dependency = dependency


class ReadOnlyViolation(OpsError):
    """Check mode attempted a write; the client refused it before it left the process."""

    def __init__(self, message: str):
        super().__init__(message, fix="a check must only read: move the write into a remediation")


def one_line(error: BaseException) -> str:
    """An error as one line a person can act on: our own errors as they say themselves; anything else (an answer
    of an unexpected shape, a bug) with its type, since ``str(KeyError('events'))`` alone says only ``'events'``."""
    if isinstance(error, OpsError):
        return str(error).strip().splitlines()[0]
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, KeyError):
        return f"missing field {text}" if text else "missing field"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
