"""The pytest plugin is a package of modules by concern that pytest sees as one plugin (entmoot_ops.pytest_plugin)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from _pytest.config import PytestPluginManager
from _pytest.fixtures import FixtureFunctionDefinition

import entmoot_ops.pytest_plugin as plugin


def _modules():
    return [importlib.import_module(f"{plugin.__name__}.{info.name}") for info in pkgutil.iter_modules(plugin.__path__)]


def _hooks_and_fixtures(module) -> set[str]:
    manager = PytestPluginManager()
    return {name for name, value in vars(module).items()
            if (isinstance(value, FixtureFunctionDefinition) or manager.parse_hookimpl_opts(module, name) is not None)
            and getattr(value, "__module__", module.__name__) == module.__name__}


def test_every_hook_and_fixture_of_a_module_is_the_plugins_and_each_hook_has_one_module():
    """A hook or fixture only pytest's plugin (the package) registers: one left out of its imports would never run."""
    owned: dict[str, str] = {}
    for module in _modules():
        for name in _hooks_and_fixtures(module):
            assert name not in owned, f"{name} in {owned[name]} and {module.__name__}: pluggy would see one of them only"
            owned[name] = module.__name__
    assert set(owned) == set(plugin.__all__), sorted(set(owned) ^ set(plugin.__all__))
    assert all(getattr(plugin, name) is getattr(importlib.import_module(owned[name]), name) for name in owned)


def test_no_module_of_the_plugin_is_over_300_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in Path(plugin.__file__).parent.glob("*.py")}
    assert max(sizes.values()) <= 300, sizes
