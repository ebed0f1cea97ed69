"""The run spread over xdist's workers: the controller's preflight handed over to them, their refusals said by the
controller, the scheduling by environment; and the SSH connections warmed up while the first checks run."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from entmoot_ops import scheduling
from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment
from entmoot_ops.errors import OpsError
from entmoot_ops.pytest_plugin import results
from entmoot_ops.pytest_plugin.environments import hand_over, run_preflights
from entmoot_ops.pytest_plugin.options import runs_checks
from entmoot_ops.pytest_plugin.selection import refuse_empty_selection
from entmoot_ops.pytest_plugin.state import SUITE_KEY, env_name


def distributed(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and config.pluginmanager.hasplugin("dsession")


def prepare_handoff(config: pytest.Config) -> None:
    if distributed(config):
        # The preflight holds resolved secrets: mkdtemp's directory is the user's alone (0700), removed at the end.
        config.stash[SUITE_KEY].handoff = Path(tempfile.mkdtemp(prefix="entmoot-ops-")) / "preflight.json"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A worker refused the selection it collected, or found none of it in its shard: its words, not the controller's
    guess from an empty selection."""
    said = getattr(node, "workeroutput", {})
    if said.get("entmoot_refusal"):
        node.config.stash[SUITE_KEY].refusal = said["entmoot_refusal"]
    if said.get("entmoot_shard_left_empty"):
        suite = node.config.stash[SUITE_KEY]
        suite.shard, suite.shard_left_empty = said["entmoot_shard_left_empty"], True


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """The first worker's selection is known: refuse an empty one, else run the preflight and hand it over
    before xdist sends the first check (it schedules after this hook returns)."""
    config = node.config
    suite = config.stash[SUITE_KEY]
    if config.option.collectonly or not runs_checks(config) or suite.handoff is None or suite.handoff.exists():
        return
    if not ids:
        try:
            refuse_empty_selection(config, [])
        except pytest.UsageError as exc:
            suite.refusal = str(exc)  # said as pytest says a usage error, when the session ends
        return
    results.start(config)
    run_preflights(config)
    hand_over(suite)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return scheduling.scheduler(config, log, list(config.stash[SUITE_KEY].environments))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    suite = node.config.stash[SUITE_KEY]
    if suite.handoff is not None:
        node.workerinput["entmoot_preflight"] = str(suite.handoff)


def oncall_urls(config: pytest.Config, env: Environment) -> tuple[str, ...]:
    """The on-call hosts: testinfra's own ``--hosts`` when given (one run checks several bastions), else
    ``[hosts] oncall``."""
    given = tuple(url.strip() for url in (config.getoption("hosts", None) or "").split(",") if url.strip())
    return given or env.hosts.oncall


def open_ssh_connections(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An SSH connection costs a handshake (a tenth of a second on loopback, round trips more to a bastion): opened
    on a side thread while the first checks run, the host checks find it ready (ssh's ControlMaster)."""
    suite = config.stash[SUITE_KEY]
    opened = suite.ssh_warmups  # environments that reach a host the same way share its connection: one handshake
    for name in dict.fromkeys(env_name(item) for item in items if "oncall" in getattr(item, "fixturenames", ())):
        clients = Clients(suite.environments[name], preflight=suite.preflights[name])
        for url in oncall_urls(config, clients.env):
            with contextlib.suppress(OpsError):  # an unresolved ssh_config: the check that needs it says so
                host = clients.host(url) if url.startswith("ssh://") else None
                if host is not None and host.backend.controlpath not in opened:
                    opened[host.backend.controlpath] = threading.Thread(target=_open_ssh, args=(host,), name=f"ssh {url}", daemon=True)
                    opened[host.backend.controlpath].start()


def _open_ssh(host: Any) -> None:
    with contextlib.suppress(Exception):  # a warm-up only: the check that needs the host says what is wrong with it
        host.run("true")
