"""Several environments under xdist: each worker is given whole environments, and nothing is lost on the way."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from entmoot_ops.scheduling import ByEnvironment, environment_of, scheduler

NAMES = ["eu", "eu-west", "prod"]


@pytest.mark.parametrize(("nodeid", "expected"), [
    ("checks/test_api.py::test_api_health[eu]", "eu"),
    ("checks/test_api.py::test_api_health[eu-west]", "eu-west"),  # not "eu" with a resource called "west"
    ("checks/test_replication.py::test_replica_lag[eu-west-replica1]", "eu-west"),
    ("checks/test_replication.py::test_replica_lag[eu-replica1]", "eu"),
    ("checks/test_api.py::test_api_health[staging]", None),
    ("checks/test_api.py::test_api_health", None),
])
def test_a_node_id_names_its_environment(nodeid, expected):
    assert environment_of(nodeid, NAMES) == expected


def _config(dist: str, workers: int) -> SimpleNamespace:
    return SimpleNamespace(option=SimpleNamespace(dist=dist, numprocesses=workers, loadscopereorder=True),
                           getvalue={"tx": [f"{workers}*popen"]}.get)


@pytest.mark.parametrize(("dist", "workers", "environments", "by_environment"), [
    ("load", 2, NAMES, True),
    ("load", 2, ["eu", "prod"], True),
    ("load", 2, ["eu"], False),  # one environment for two workers: shared check by check, as xdist does
    ("worksteal", 2, NAMES, False),  # a distribution the user chose is kept
    ("loadfile", 2, NAMES, False),
])
def test_whole_environments_only_where_each_worker_gets_one(dist, workers, environments, by_environment):
    chosen = scheduler(_config(dist, workers), None, environments)
    assert isinstance(chosen, ByEnvironment) is by_environment


def test_each_environment_runs_on_one_worker_and_every_result_arrives(run_checks, environments, tmp_path):
    directory = environments("eu")
    for name in ("eu-west", "prod"):
        (directory / f"{name}.toml").write_text((directory / "eu.toml").read_text())
    run = run_checks("-m", "morning", "-k", "api_health or replica", "--environments-dir", str(directory),
                     "--env", "eu", "--env", "eu-west", "--env", "prod", "-n", "2", "-v")
    assert run.returncode == 0, run.output[-3000:]
    workers: dict[str, set[str]] = {}
    for worker, nodeid in re.findall(r"^\[(gw\d)\] \[\s*\d+%\] PASSED (\S+)", run.output, re.M):
        workers.setdefault(environment_of(nodeid, NAMES), set()).add(worker)
    assert set(workers) == set(NAMES) and all(len(w) == 1 for w in workers.values()), workers
    assert set().union(*workers.values()) == {"gw0", "gw1"}
    # Workers end as soon as their session has reported: every result still reaches the junit file.
    assert len(run.results) == 3 * 4 and {r.outcome for r in run.results} == {"pass"}
