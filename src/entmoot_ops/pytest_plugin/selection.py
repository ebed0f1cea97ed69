"""The selection: -m by checklist or component, --check, -k; a selection that is unknown, empty or refused stops the
run before anything starts, deletes or connects; each selected check's metadata is valid."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import pytest

from entmoot_ops import sharding
from entmoot_ops.chaos import experiment_catalogue
from entmoot_ops.check import CHECKLISTS, DEPENDENCIES, SEVERITIES, CheckSpec
from entmoot_ops.pytest_plugin import load_and_chaos, game_day, verdicts
from entmoot_ops.pytest_plugin.options import checks_arg, checks_dir, runs_checks
from entmoot_ops.pytest_plugin.state import SUITE_KEY, check_id, component, env_name, spec_of
from entmoot_ops.remediation import REGISTRY
from entmoot_ops.runbook import SECTIONS

TEST_NAME = re.compile(r"^def test_(\w+)", re.M)
CHECK_ID = re.compile(r"""@check\(\s*id=["']([^"']+)["']""")


@pytest.hookimpl(wrapper=True, specname="pytest_collection_modifyitems")
def pytest_refusal_keeps_the_last_run(config: pytest.Config, items: list[pytest.Item]) -> Any:
    """pytest calls pytest_collection_finish even when the selection was refused (its own usage errors and ours):
    a refused run must not empty the last run's results nor start a sandbox, and an xdist worker must not hand the
    controller a selection to schedule."""
    try:
        return (yield)
    except BaseException as exc:
        config.stash[SUITE_KEY].refused = True
        items[:] = []
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None and isinstance(exc, pytest.UsageError):  # the controller says it (pytest_testnodedown)
            workeroutput["entmoot_refusal"] = str(exc)
        raise


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """After pytest's own selection (-m, -k): its usage errors, such as an unknown marker, come first. A check
    of the deploy gate that is still selected needs the version it verifies."""
    _select_checks(config, items)
    refuse_empty_selection(config, items)
    needs = [item.nodeid for item in items if "expected_version" in getattr(item, "fixturenames", ())]
    if needs and not config.getoption("entmoot_expected_version") and not config.option.collectonly:
        raise pytest.UsageError(f"the deploy gate needs --expected-version (selected: {needs[0]} and {len(needs) - 1} more)")
    _select_shard(config, items)  # after the refusals: every shard of a selection refuses it alike
    game_day.order(config, items)
    load_and_chaos.refuse_selected(config, items)
    _validate_metadata(config, items)
    for item in items:
        if spec_of(item) is not None:
            verdicts.renders_verdicts(item)


def _select_shard(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--shard K/N: only this part of the selection (entmoot_ops.sharding), the rest deselected as -m deselects."""
    given = config.getoption("entmoot_shard")
    if not given or not items:
        return
    try:
        shard = sharding.Shard.parse(given)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    falls = sharding.mine([(env_name(item), component(check_id(item))) for item in items], shard)
    kept = [item for item, mine in zip(items, falls, strict=True) if mine]
    dropped = [item for item, mine in zip(items, falls, strict=True) if not mine]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    config.stash[SUITE_KEY].shard = str(shard)
    if items and not kept:
        config.stash[SUITE_KEY].shard_left_empty = True
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None:  # the controller says it (distribution.pytest_testnodedown)
            workeroutput["entmoot_shard_left_empty"] = str(shard)
    items[:] = kept


def pytest_itemcollected(item: pytest.Item) -> None:
    found = check_id(item)
    if found:
        item.add_marker(component(found))


def selects(config: pytest.Config, marker: str) -> bool:
    """Whether -m selects a marker's checks, by pytest's own -m grammar ("load", "load and not x", not "not load").
    An expression that holds without the marker ("not e2e", "not redis") does not ask for it: whatever of its checks
    it lets through is refused once collected, as a selection by -k is."""
    expression = config.option.markexpr
    if not expression:
        return False
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # pytest moved its private grammar: judge by the word
        return marker in expression.split()
    compiled = Expression.compile(expression)
    return compiled.evaluate(lambda name, **_: name == marker) and not compiled.evaluate(lambda name, **_: False)


def _declared_check_ids(config: pytest.Config) -> list[str]:
    """The ids the checks declare, read from their source without collecting anything; the chaos checks are one
    per experiment file (checks/test_chaos.py)."""
    found = [f"chaos.{name}" for name in [*experiment_catalogue.experiments(config.rootpath), *experiment_catalogue.broken(config.rootpath)]]
    for path in sorted(checks_dir(config).glob("test_*.py")):
        found += CHECK_ID.findall(path.read_text(encoding="utf-8"))
    return sorted(set(found))


def _closest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def refuse_unknown_selection(config: pytest.Config) -> None:
    """A typo in -m or --check is refused before anything starts, deletes or connects, with the closest names."""
    markers = sorted({line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")})
    unknown = _unknown_checklist(config.option.markexpr or "", markers)
    if unknown:
        raise pytest.UsageError(f"-m: {unknown}")
    known = _declared_check_ids(config)
    for wanted in config.getoption("entmoot_checks"):
        if wanted not in known:
            raise pytest.UsageError(f"--check: no check {wanted!r}{_closest(wanted, known)} "
                                    f"(`pytest {checks_arg(config)} --collect-only -q` lists the checks)")
    # An experiment file naming a check or checklist that does not exist would only show as a detection never made.
    for experiment in experiment_catalogue.experiments(config.rootpath).values() if selects(config, "chaos") else ():
        unknown = _unknown_checklist(experiment.steady_state, markers)
        if unknown:
            raise pytest.UsageError(f"{experiment.path}: steady_state: {unknown}")
        for key, named in (("detectors", experiment.detectors), ("also", experiment.also)):
            for index, named_id in enumerate(named):
                if named_id not in known:
                    raise pytest.UsageError(f"{experiment.path}: {key}.{index}: no check {named_id!r}{_closest(named_id, known)}")


def _unknown_checklist(expression: str, markers: list[str]) -> str | None:
    for word in re.findall(r"[A-Za-z_][\w-]*", expression):
        if word not in ("and", "or", "not") and word not in markers:
            components = sorted(set(markers) - set(CHECKLISTS) - {"check", "settles"})
            return (f"no checklist or component {word!r}{_closest(word, markers)}; checklists: {', '.join(CHECKLISTS)}; "
                    f"components: {', '.join(components)}")
    return None


def _components(config: pytest.Config) -> list[str]:
    return sorted({component(declared) for declared in _declared_check_ids(config)})


def register_components(config: pytest.Config) -> None:
    registered = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name in _components(config):
        if name not in registered:
            config.addinivalue_line("markers", f"{name}: the {name}.* checks (a component)")


def refuse_empty_selection(config: pytest.Config, items: list[pytest.Item]) -> None:
    keyword = config.option.keyword
    # Under xdist the controller judges what its workers selected (pytest_xdist_node_collection_finished).
    if items or not keyword or not runs_checks(config) or hasattr(config, "workerinput"):
        return
    # What -k matches: the checks' function and file names.
    names = sorted({name for path in checks_dir(config).glob("test_*.py")
                    for name in [path.stem.removeprefix("test_"), *TEST_NAME.findall(path.read_text(encoding="utf-8"))]})
    hint = next((h for w in re.findall(r"[A-Za-z_][\w.-]*", keyword) if w not in ("and", "or", "not") and (h := _closest(w, names))), "")
    raise pytest.UsageError(f"-k {keyword!r} selects no check{hint}: nothing was started or verified")


def _select_checks(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = set(config.getoption("entmoot_checks"))
    if not wanted:
        return
    known = {check_id(item) for item in items}
    if wanted - known:
        raise pytest.UsageError(f"--check: no check {', '.join(sorted(wanted - known))} among the selected checks")
    keep = [item for item in items if check_id(item) in wanted]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def _validate_metadata(config: pytest.Config, items: list[pytest.Item]) -> None:
    directory = checks_dir(config)
    problems = []
    for item in items:
        in_checks = directory in Path(item.path).parents
        if item.get_closest_marker("check") is None:
            if in_checks:
                problems.append(f"{item.nodeid}: not declared with entmoot_ops.check.check(...)")
            continue
        problem = _validate(item)
        if problem:
            problems.append(f"{item.nodeid}: {problem}")
    if problems:
        raise pytest.UsageError("invalid check metadata:\n  " + "\n  ".join(dict.fromkeys(problems)))


def _validate(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("check")
    try:
        spec = CheckSpec(**marker.kwargs)
    except TypeError as exc:
        return f"bad check metadata: {exc}"
    if spec.severity not in SEVERITIES:
        return f"severity {spec.severity!r} is not one of {', '.join(SEVERITIES)}"
    if spec.section not in SECTIONS:
        return f"runbook section {spec.section!r} is unknown"
    if not spec.depends or not set(spec.depends) <= DEPENDENCIES.keys():
        return f"depends {spec.depends!r}: name what it depends on, from {', '.join(DEPENDENCIES)}"
    if spec.remediation not in REGISTRY:
        return f"remediation {spec.remediation!r} is not registered"
    if not any(item.get_closest_marker(name) for name in CHECKLISTS):
        return f"no checklist marker (one of {', '.join(CHECKLISTS)})"
    return None
