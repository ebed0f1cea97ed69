"""Experiment files: an experiment written in TOML, as chaostoolkit's experiment files and AWS FIS templates are
written, validated as strictly as an environment file (an error is one line naming the file and the key).

A file ``<name>.toml`` holds a title and a runbook section; a method (steps of the action catalogue with their
parameters, or an FIS template by id or Name tag, with its own actions); the checks that must detect the fault,
the blast radius (what the fault breaks, as checks declare their dependencies), the steady state (a marker
expression), safeguards, CloudWatch alarms that stop it, and deadlines. Rollbacks are implied by the actions.
They are read from the project's ``experiments/`` and from each environment's ``[chaos] experiments_dir``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, StringConstraints

from entmoot_ops.chaos.actions import ACTIONS
from entmoot_ops.chaos.experiment import Deadlines, Experiment, Step
from entmoot_ops.check import DEPENDENCIES
from entmoot_ops.config import Strict, read_toml, validated
from entmoot_ops.errors import ConfigError
from entmoot_ops.runbook import SECTIONS

PROJECT_DIR = Path("experiments")  # relative to the project, the directory holding checks/
NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
CheckId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+\.[a-z0-9.-]+$")]
Section = Literal[tuple(SECTIONS)]  # type: ignore[valid-type]
Broken = Literal[tuple(DEPENDENCIES)]  # type: ignore[valid-type]
Seconds = Annotated[float, Field(gt=0, le=3600)]


def _step_model(name: str, params: type[Strict]) -> type[Strict]:
    """A step of one action: its name as the tag, its parameters beside it (``action = "kill"``, ``component = ...``)."""
    return type(f"{params.__name__}Step_{name.replace('-', '_')}", (params,), {"__annotations__": {"action": Literal[name]}})


StepFile = Annotated[Union[tuple(_step_model(a.name, a.params) for a in ACTIONS.values())],  # noqa: UP007 - built at run time
                     Field(discriminator="action")]


class DeadlinesFile(Strict):
    """Each replaces the environment's own ([chaos]) for this experiment; the time limit can only be shorter."""
    detection_seconds: Seconds | None = None
    recovery_seconds: Seconds | None = None
    time_limit_seconds: Seconds | None = None
    hold_seconds: Seconds = 10  # an experiment that expects no detector watches this long that nothing turns red


class ExperimentFile(Strict):
    title: Annotated[str, StringConstraints(min_length=1)]
    section: Section  # the runbook section whose procedure it exercises (entmoot-ops coverage)
    method: Annotated[tuple[StepFile, ...], Field(min_length=1)]
    detectors: tuple[CheckId, ...] = ()
    blast_radius: tuple[Broken, ...] = ()  # what the fault breaks: checks declaring these dependencies may turn red
    also: tuple[CheckId, ...] = ()  # further checks a second condition of the fault may turn red
    steady_state: Annotated[str, StringConstraints(min_length=1)] = "morning"
    safeguards: tuple[Literal["api-error-rate"], ...] = ("api-error-rate",)
    stop_alarms: tuple[Annotated[str, StringConstraints(min_length=1, max_length=255)], ...] = ()
    deadlines: DeadlinesFile = DeadlinesFile()
    remediation: str = "chaos.detection-gap"


def load_file(path: Path, *, origin: str | None = None) -> Experiment:
    """One experiment file; ``origin`` is the environment whose directory holds it (None: the project's)."""
    name = path.stem
    if not NAME.fullmatch(name):
        raise ConfigError(f"{path}: the file name must be the experiment's name: lowercase letters, digits and dashes")
    found = validated(path, ExperimentFile, read_toml(path))
    steps = tuple(Step(step.action, step.model_dump(exclude={"action"}, exclude_none=True)) for step in found.method)
    platform = "sandbox" if any(ACTIONS[s.action].platform == "sandbox" for s in steps) else "aws"
    deadlines = found.deadlines
    return Experiment(name, found.title, found.section, platform, steps, detectors=found.detectors,
                      breaks=found.blast_radius, also=found.also, steady_state=found.steady_state,
                      hold_seconds=deadlines.hold_seconds, safeguards=found.safeguards, remediation=found.remediation,
                      stop_alarms=found.stop_alarms,
                      deadlines=Deadlines(deadlines.detection_seconds, deadlines.recovery_seconds, deadlines.time_limit_seconds),
                      origin=origin, path=str(path))


def load(directories: Iterable[tuple[Path, str | None]]) -> tuple[dict[str, Experiment], dict[str, ConfigError]]:
    """Every ``*.toml`` of each (directory, origin), in name order; and, by name (the file's stem), the files that
    are wrong, each error one line naming the file and the key: a name defined twice is wrong the second time.
    A directory an environment names that is not there is the environment's error: raised."""
    found: dict[str, Experiment] = {}
    wrong: dict[str, ConfigError] = {}
    seen: set[Path] = set()
    for directory, origin in directories:
        if directory.resolve() in seen:
            continue
        seen.add(directory.resolve())
        if not directory.is_dir() and origin is None:
            continue  # a project without experiments of its own
        if not directory.is_dir():
            raise ConfigError(f"{directory}: no such experiments directory",
                              fix="create it, or correct [chaos] experiments_dir of the environment")
        for path in sorted(directory.glob("*.toml")):
            try:
                experiment = load_file(path, origin=origin)
            except ConfigError as exc:
                wrong.setdefault(path.stem, exc)
                continue
            if experiment.name in found:
                wrong.setdefault(experiment.name, ConfigError(f"{path}: experiment {experiment.name} is defined twice "
                                                              f"(also in {found[experiment.name].path})", fix="rename one of the files"))
                continue
            found[experiment.name] = experiment
    return found, wrong


def directories(project: Path, environments: Iterable[Any]) -> list[tuple[Path, str | None]]:
    """The project's experiments, then each environment's own directory."""
    return [(project / PROJECT_DIR, None),
            *((Path(env.chaos.experiments_dir).expanduser(), env.name) for env in environments if env.chaos.experiments_dir)]
