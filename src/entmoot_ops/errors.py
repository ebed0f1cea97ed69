"""Errors that end in one clear line for the person at the terminal, never a traceback."""


class OpsError(Exception):
    """Base class: ``str(error)`` is the whole message a user sees."""


class ConfigError(OpsError):
    """An environment file, a flag or a secret reference is wrong."""


class DependencyError(OpsError):
    """A dependency could not be measured: unreachable, timed out, refused, or answered nonsense."""

    def __init__(self, dependency: str, detail: str, *, reachable: bool = False):
        super().__init__(f"{dependency} {'refused the request' if reachable else 'unreachable'}: {detail}")
        self.dependency = dependency


class ReadOnlyViolation(OpsError):
    """Check mode attempted a write; the client refused it before it left the process."""
