"""How xdist shares several environments' checks between its workers: whole environments, all given out at once.

Under xdist's default ``load`` distribution, every worker runs some checks of every environment, so each worker
builds every environment's clients and connections. Sent whole environments, a worker builds only its own. With
fewer environments than workers, the checks are shared one by one as xdist does by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from xdist.scheduler import LoadScopeScheduling

_PARAMETERS = re.compile(r"\[(?P<id>[^\]]*)\]$")


def environment_of(nodeid: str, environments: Iterable[str]) -> str | None:
    """The environment a check's node id names: its parameter id is ``env`` or ``env-resource``, and an
    environment's name may hold a dash itself, so the longest name that fits wins."""
    found = _PARAMETERS.search(nodeid)
    if found is None:
        return None
    fitting = [name for name in environments if found["id"] == name or found["id"].startswith(f"{name}-")]
    return max(fitting, key=len, default=None)


class ByEnvironment(LoadScopeScheduling):
    """xdist's scope scheduling, where a scope is an environment, and every environment is given out at once: a
    worker measures its environments' checks side by side (entmoot_ops.pytest_plugin.concurrency), so that
    environments waiting on the network overlap, not queue behind each other."""

    def __init__(self, config: Any, log: Any, environments: list[str]):
        super().__init__(config, log)
        self._environments = environments

    def _split_scope(self, nodeid: str) -> str:
        return environment_of(nodeid, self._environments) or super()._split_scope(nodeid)

    def schedule(self) -> None:
        super().schedule()
        while self.workqueue and self.nodes:
            for node in self.nodes:
                if self.workqueue:
                    self._assign_work_unit(node)


def scheduler(config: Any, log: Any, environments: list[str]) -> ByEnvironment | None:
    """The scheduler for this run, or None for xdist's own: only the default distribution is replaced, and only
    when every worker can be given an environment of its own."""
    if config.option.dist != "load" or len(environments) < config.option.numprocesses:
        return None
    return ByEnvironment(config, log, environments)
