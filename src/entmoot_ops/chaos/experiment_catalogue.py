"""The experiments a run offers: the project's experiment files (``experiments/``, the suite's own among them) and
those of each selected environment's ``[chaos] experiments_dir`` (:mod:`entmoot_ops.chaos.files`).

The plugin selects them once the environments are known; ``checks/test_chaos.py`` makes a check of each, a file
that is wrong included: a run that selects it is refused, one that does not (a morning) never reads its error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from entmoot_ops.chaos import files
from entmoot_ops.chaos.experiment import Experiment
from entmoot_ops.errors import ConfigError

_selected: dict[Path, tuple[dict[str, Experiment], dict[str, ConfigError]]] = {}


def select(project: Path, environments: Iterable[Any], *, strict: bool = True) -> dict[str, Experiment]:
    """Load the project's experiments and the environments' own. A file that is wrong is a ConfigError, or, not
    ``strict``, set aside: :func:`broken` says it."""
    found, wrong = files.load(files.directories(project, environments))
    if strict and wrong:
        raise next(iter(wrong.values()))
    _selected[project.resolve()] = found, wrong
    return found


def experiments(project: Path) -> dict[str, Experiment]:
    """What :func:`select` loaded for this project, else the project's own experiments."""
    if project.resolve() not in _selected:
        return select(project, ())
    return _selected[project.resolve()][0]


def broken(project: Path) -> dict[str, ConfigError]:
    """The experiment files that are wrong, by name, as :func:`select` set them aside."""
    experiments(project)
    return _selected[project.resolve()][1]
