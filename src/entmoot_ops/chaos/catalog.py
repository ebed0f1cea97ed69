"""The experiments a run offers: the project's experiment files (``experiments/``, the suite's own among them) and
those of each selected environment's ``[chaos] experiments_dir`` (:mod:`entmoot_ops.chaos.files`).

The plugin selects them once the environments are known; ``checks/test_chaos.py`` makes a check of each.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from entmoot_ops.chaos import files
from entmoot_ops.chaos.experiment import Experiment

_selected: dict[Path, dict[str, Experiment]] = {}


def select(project: Path, environments: Iterable[Any]) -> dict[str, Experiment]:
    """Load the project's experiments and the environments' own; a file that is wrong is one ConfigError."""
    _selected[project.resolve()] = files.load(files.directories(project, environments))
    return _selected[project.resolve()]


def experiments(project: Path) -> dict[str, Experiment]:
    """What :func:`select` loaded for this project, else the project's own experiments."""
    if project.resolve() not in _selected:
        return select(project, ())
    return _selected[project.resolve()]
