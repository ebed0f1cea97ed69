"""Shards of a run, for a fleet that outgrows one runner: ``--shard K/N`` runs the K-th of N parts of a selection,
so that a scheduler (a Kubernetes Indexed Job, a CI matrix, ECS scheduled tasks) runs the parts side by side and
``entmoot-ops report --merge`` joins their reports into one.

Every runner computes the same parts from the same selection, without asking any other: a part is whole
environments when there are at least as many environments as shards, else each environment's check groups (a
check's component: ``redis`` of ``redis.memory``), so that one large environment is spread too. The units go to the
parts largest first, each to the part with the fewest checks so far (ties to the lower part): the parts are even,
and the same units land in the same part on every run of the same selection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as a person and a CI matrix count
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` with 1 <= K <= N; a ValueError in one line otherwise."""
        found = _SHARD.match(text)
        if not found or not 1 <= int(found[1]) <= int(found[2]):
            raise ValueError(f"--shard {text!r}: give K/N with 1 <= K <= N (the 2nd of 4 shards: --shard 2/4)")
        return cls(int(found[1]), int(found[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def unit(environment: str, component: str, *, by_component: bool) -> str:
    return f"{environment}/{component}" if by_component else environment


def parts(checks: Iterable[tuple[str, str]], count: int) -> dict[str, int]:
    """Each unit of these (environment, component) pairs, one per selected check, and the part (1-based) it goes to."""
    checks = list(checks)
    by_component = len({environment for environment, _ in checks}) < count
    sizes: dict[str, int] = {}
    for environment, component in checks:
        key = unit(environment, component, by_component=by_component)
        sizes[key] = sizes.get(key, 0) + 1
    load = [0] * count
    assigned: dict[str, int] = {}
    for key, size in sorted(sizes.items(), key=lambda entry: (-entry[1], entry[0])):
        lightest = min(range(count), key=lambda index: (load[index], index))
        assigned[key] = lightest + 1
        load[lightest] += size
    return assigned


def mine(checks: list[tuple[str, str]], shard: Shard) -> list[bool]:
    """For each (environment, component) of the selection, in its order: whether it falls to ``shard``."""
    assigned = parts(checks, shard.count)
    by_component = len({environment for environment, _ in checks}) < shard.count
    return [assigned[unit(environment, component, by_component=by_component)] == shard.index for environment, component in checks]
