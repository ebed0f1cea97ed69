"""Probes: small, typed, read-only measurements. Each takes clients and settings and returns a dataclass.

Each probe reads inside :func:`measuring` (from :mod:`entmoot_ops.boundary`), which turns every failure of the
outside (refused, timed out, denied, malformed) into a :class:`~entmoot_ops.errors.DependencyError` with one line,
so a dead or wrong dependency is an *error* outcome.
"""

from entmoot_ops.boundary import aws_error, measuring

__all__ = ["aws_error", "measuring"]
