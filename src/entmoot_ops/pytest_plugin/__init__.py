"""The suite's pytest plugin (entry point ``pytest11: entmoot_ops``), a module per concern:

- options: the command-line options and ini settings, and where the checks are (ini ``entmoot_checks_dir``)
- state: the run's Suite, its stash keys, and what an item carries (its check, component, environment)
- environments: environments loaded and refused when configured; the preflights, the sandbox first
- selection: -m, --check, -k; unknown, empty and refused selections; the checks' metadata validated
- actions: load runs and chaos experiments refused where not allowed, and the fixtures that carry them out
- game_day: --gameday's selection, order and report
- fixtures: ``env`` and its parametrisation, ``oncall``, ``replica``, ``lag_target`` and the run's paths
- distribution: xdist's hand-over of the preflight, its scheduling and refusals; the SSH warm-up
- checkrun: the wrapper around a check's call: its evidence, charts and remediation
- concurrency: the checks measured ahead of their turn, each environment on threads of its own
- remediation: a failing check's plan, and on --remediate its action and the re-check
- verdicts: a check's report made a verdict and a CheckResult
- results: the junit and Allure results files, held back until checks start
- summary: the terminal summary, summary.json, notifications and metrics
- lifecycle: the run's phases: session start, the selection known, Ctrl-C, the session's end, os._exit

pytest sees one plugin, as before the split: each hook and fixture is imported here from the module that owns it
(each hook is implemented in one module only). pluggy orders hook implementations by their plugin's registration
and by tryfirst/trylast/wrapper: one plugin with the same implementations keeps every hook's order among the other
plugins as it was, and ``-p no:entmoot_ops`` still disables all of it. Several entry points, or modules registered
from a hook, would each be a plugin of their own, registered in an order of their own.
"""

from entmoot_ops.pytest_plugin.load_and_chaos import chaos_runner, load_run
from entmoot_ops.pytest_plugin.checkrun import pytest_runtest_call
from entmoot_ops.pytest_plugin.concurrency import pytest_pyfunc_call
from entmoot_ops.pytest_plugin.distribution import (pytest_configure_node, pytest_testnodedown, pytest_xdist_make_scheduler,
                                                    pytest_xdist_node_collection_finished)
from entmoot_ops.pytest_plugin.environments import pytest_configure
from entmoot_ops.pytest_plugin.fixtures import (audit_log, env, expected_version, lag_target, oncall, pytest_generate_tests, replica,
                                                reports_dir)
from entmoot_ops.pytest_plugin.game_day import gameday
from entmoot_ops.pytest_plugin.lifecycle import (pytest_collection_finish, pytest_keyboard_interrupt, pytest_runtest_protocol,
                                                 pytest_sessionfinish, pytest_sessionstart, pytest_unconfigure)
from entmoot_ops.pytest_plugin.options import pytest_addoption
from entmoot_ops.pytest_plugin.selection import pytest_collection_modifyitems, pytest_itemcollected, pytest_refusal_keeps_the_last_run
from entmoot_ops.pytest_plugin.summary import pytest_terminal_summary
from entmoot_ops.pytest_plugin.verdicts import pytest_runtest_logreport, pytest_runtest_makereport

__all__ = [
    # hooks
    "pytest_addoption", "pytest_configure", "pytest_sessionstart", "pytest_refusal_keeps_the_last_run", "pytest_collection_modifyitems",
    "pytest_itemcollected", "pytest_generate_tests", "pytest_collection_finish", "pytest_testnodedown",
    "pytest_xdist_node_collection_finished", "pytest_xdist_make_scheduler", "pytest_configure_node", "pytest_runtest_protocol",
    "pytest_runtest_call", "pytest_pyfunc_call", "pytest_runtest_makereport", "pytest_runtest_logreport", "pytest_keyboard_interrupt",
    "pytest_terminal_summary", "pytest_sessionfinish", "pytest_unconfigure",
    # fixtures
    "env", "oncall", "replica", "lag_target", "reports_dir", "audit_log", "expected_version", "gameday", "load_run", "chaos_runner",
]
