"""The layers (docs/architecture-layers.md): a module imports only from its own layer or below, the sandbox imports
nothing of the suite but its foundation, and no import circle is left anywhere in src/. An import that breaks one
fails here, in CI. Nothing here starts the sandbox."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

from conftest import ROOT

PACKAGE = "entmoot_ops"
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _contract(kind: str, name_start: str) -> dict:
    return next(c for c in CONTRACTS if c["type"] == kind and c["name"].startswith(name_start))


def _graph() -> grimp.ImportGraph:
    # Every import the code makes, at module level or inside a function, TYPE_CHECKING blocks included; no cache
    # written into the repository, none shared by xdist's workers.
    return grimp.build_graph(PACKAGE, cache_dir=None)


def _lint_imports() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert found, "lint-imports (import-linter, in the test extra) is not installed"
    return found


def test_lint_imports_keeps_every_contract():
    run = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in run.stdout, run.stdout[-2000:]


def _circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's, without recursion)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_in_src():
    graph = _graph()
    circles = _circles(graph)
    described = []
    for circle in circles:
        lines = []
        for importer in circle:
            for imported in sorted(graph.find_modules_directly_imported_by(importer) & set(circle)):
                details = graph.get_import_details(importer=importer, imported=imported)
                lines.append(f"  {importer} -> {imported} (l.{', '.join(str(d['line_number']) for d in details)})")
        described.append("\n".join(lines))
    assert circles == [], "import circles:\n" + "\n\n".join(described)


def test_the_circle_finder_finds_a_circle():
    class Two:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(module: str) -> set[str]:
            return {"a": {"b"}, "b": {"a", "c"}, "c": set()}[module]

    assert _circles(Two()) == [["a", "b"]]  # type: ignore[arg-type]


def _layered(contract: dict) -> set[str]:
    container = contract["containers"][0]
    return {f"{container}.{name.strip()}" for layer in contract["layers"] for name in layer.replace("|", ":").split(":")}


def test_every_module_has_a_layer_and_the_sandbox_a_rule():
    """A new module is placed in a layer (and named to the sandbox's contract) before it is merged: a module no
    contract names is one no contract checks."""
    graph = _graph()
    layers = _contract("layers", "The suite's layers")
    layered = _layered(layers)
    assert layered <= graph.modules, f"layers naming no module: {sorted(layered - graph.modules)}"
    sandbox = f"{PACKAGE}.sandbox"
    # Packages that are only containers (their __init__ imports nothing) need no place of their own.
    containers = {m for m in graph.modules if graph.find_children(m) and not graph.find_modules_directly_imported_by(m)}
    unplaced = sorted(m for m in graph.modules
                      if m not in containers and m != sandbox and not m.startswith(sandbox + ".")
                      and not any(m == p or m.startswith(p + ".") for p in layered))
    assert unplaced == [], f"modules in no layer of pyproject.toml's [tool.importlinter]: {unplaced}"

    foundation = _layered({"containers": layers["containers"], "layers": [layers["layers"][-1]]})
    forbidden = set(_contract("forbidden", "The sandbox imports nothing")["forbidden_modules"])
    top = {m for m in graph.find_children(PACKAGE) if m != sandbox}
    assert forbidden | foundation == top and not forbidden & foundation, (
        f"forbid the sandbox {sorted(top - forbidden - foundation)}; foundation and forbidden both: {sorted(forbidden & foundation)}")


def test_the_sandbox_keeps_the_protocols_its_agent_and_faults_take():
    """agent and faults type the sandbox as sandbox.core's protocols; the supervisor's Sandbox and the Agent are what
    they are handed, so each has every member of them."""
    from entmoot_ops.sandbox import core
    from entmoot_ops.sandbox.agent import Agent
    from entmoot_ops.sandbox.supervisor import Sandbox

    def members(protocol: type) -> set[str]:
        names = set()
        for klass in protocol.__mro__:
            if klass in (object,) or klass.__name__ in ("Protocol", "Generic"):
                continue
            names |= set(getattr(klass, "__annotations__", {})) | {n for n in vars(klass) if not n.startswith("_")}
        return names

    assigned = inspect.getsource(Sandbox.__init__)
    missing = sorted(n for n in members(core.Target) if not hasattr(Sandbox, n)
                     and not re.search(rf"self\.{n}\b[\w., ]*=", assigned))
    assert missing == [], f"Sandbox lacks what faults use: {missing}"
    fields = set(Agent.__dataclass_fields__)
    missing = sorted(n for n in members(core.AgentControls) if not hasattr(Agent, n) and n not in fields)
    assert missing == [], f"Agent lacks what faults drive: {missing}"
