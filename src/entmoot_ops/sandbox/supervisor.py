"""The sandbox process: starts every component, serves the control interface, tears everything down.

Run as ``python -m entmoot_ops.sandbox serve --state-file F``: when ready it writes F (JSON: endpoints as
environment variables, pids, control URL) and runs until SIGTERM/SIGINT or until its parent dies.

The agent and the faults it imports see the :class:`Sandbox` through :mod:`entmoot_ops.sandbox.core`'s protocols,
not through this module: they do not import the supervisor.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path
from collections.abc import Callable
from typing import Any

import requests

from entmoot_ops.sandbox import aws as sandbox_aws
from entmoot_ops.sandbox import faults, moto_extensions, seeding
from entmoot_ops.sandbox.agent import Agent
from entmoot_ops.sandbox.certificates import LOOPBACK_NAMES, Authority
from entmoot_ops.sandbox.postgres import PostgresPair
from entmoot_ops.sandbox.processes import feed, free_port, spawn, stop, wait_until
from entmoot_ops.sandbox.redis_server import RedisServer
from entmoot_ops.sandbox.ssh_host import SshHost

VERSION = "1.4.2"
PROXY = [sys.executable, "-m", "entmoot_ops.sandbox.proxy"]
REBOOT_SECONDS = 10  # a reboot of the sandbox's RDS keeps its primary down this long: an observation under load sees it
FIS_ACTIONS = ("aws:ecs:stop-task", "aws:ecs:task-network-latency", "aws:rds:reboot-db-instances",
               "aws:elasticache:replicationgroup-interrupt-az-power", "aws:fis:wait")
# What the API's requests put into CloudWatch (its flush); the agent's HealthyHostCount is not traffic.
TRAFFIC_METRICS = ("RequestCount", "HTTPCode_Target_2XX_Count", "HTTPCode_Target_4XX_Count", "HTTPCode_Target_5XX_Count",
                   "TargetResponseTime")


class Sandbox:
    def __init__(self, root: Path, postgres: PostgresPair, postgres_started: Callable[[], float]):
        """``postgres`` is already starting (``postgres_started`` waits for it): it starts before this module's
        imports, which it overlaps."""
        self.root = root
        self.api_token = secrets.token_urlsafe(24)
        self.api_port = free_port()
        self.api_process: subprocess.Popen | None = None
        self.postgres, self.postgres_started = postgres, postgres_started
        self.redis = RedisServer(root)
        self.ssh_host = SshHost(root)
        # The HTTPS listener in front of the API serves a certificate of the sandbox's own CA, as the ALB serves ACM's.
        (root / "tls").mkdir(exist_ok=True)
        self.authority = Authority(root / "tls")
        self.api_certificate = self.authority.issue("api")
        self.aws = sandbox_aws.Aws(version=VERSION)
        self.agent = Agent(self)
        self.active: dict[str, faults.Active] = {}
        self.lock = threading.RLock()
        self.control_port = free_port()
        self.timings: dict[str, float] = {}
        self.state_file: Path | None = None  # written once the sandbox is ready, again when IAM is enforced
        # The API reaches Redis and the primary through a loopback proxy, where latency or a black hole can be put.
        self.proxy_process: subprocess.Popen | None = None
        self.proxy_ports = {"redis": free_port(), "primary": free_port(), "api_https": free_port(), "admin": free_port()}
        # The API and the proxy are started first and told their settings once the rest is up: their imports (most
        # of their start-up) overlap PostgreSQL's and moto's.
        self.warming: dict[str, subprocess.Popen] = {}

    # -------------------------------------------------------------------------------------- lifecycle
    def _timed(self, name: str, step: Any) -> None:
        started = time.monotonic()
        step()
        self.timings[name] = round(time.monotonic() - started, 3)

    def start(self) -> None:
        self.warming = {"api": self._spawn_api(), "proxy": spawn(PROXY, log=self.root / "proxy.log", feed_later=True)}
        # moto runs in-process: its start and seed overlap PostgreSQL's in a side thread, as does the SSH host's.
        errors: list[BaseException] = []
        aside = [threading.Thread(target=_capturing(functools.partial(self._timed, name, step), errors))
                 for name, step in (("aws", self._start_aws), ("ssh", self.ssh_host.start))]
        for thread in aside:
            thread.start()
        self.timings["postgres"] = self.postgres_started()
        self._timed("redis", self.redis.start)
        for thread in aside:
            thread.join()
        if errors:
            raise errors[0]
        self._timed("proxy", self.start_proxy)
        self._timed("api", self.start_api)
        self._timed("agent", self.agent.start)

    def _start_aws(self) -> None:
        self.aws.start()
        seeding.seed(self.aws)
        self.aws.serve_certificate(*self.api_certificate.pem(), self.authority.ca_file.read_bytes())
        moto_extensions.services.on_reboot_db = self._reboot_db
        moto_extensions.services.on_cache_failover = self._cache_failover
        moto_extensions.fis.on_fis_action = self._fis_action

    def _fis_action(self, action: str, parameters: dict, dependencies: list[str]) -> Callable[[], None] | None:
        """An FIS action as a fault of the real servers; the undo ends it (the experiment's end, stop or stop condition)."""
        if action == "aws:ecs:task-network-latency":
            if len(dependencies) != 1:
                raise ValueError("sources must name one endpoint, the RDS instance's or the ElastiCache group's")
            fault = ("dependency_latency", {"dependency": dependencies[0], "ms": float(parameters.get("delayMilliseconds", 200))})
        elif action == "aws:elasticache:replicationgroup-interrupt-az-power":
            fault = ("component_killed", {"component": "redis"})
        elif action == "aws:rds:reboot-db-instances":
            self._reboot_db(sandbox_aws.DB_INSTANCE, str(parameters.get("forceFailover", "false")).lower() == "true")
            return None
        elif action == "aws:fis:wait":
            return None
        else:
            raise ValueError(f"the sandbox's FIS runs no {action} (it runs {', '.join(FIS_ACTIONS)})")
        try:
            self.inject(*fault)
        except KeyError as exc:
            raise ValueError(str(exc).strip("'\"")) from None

        def undo() -> None:
            with contextlib.suppress(KeyError):  # undone already (entmoot-ops sandbox fault undo)
                self.undo(fault[0])
        return undo

    def _reboot_db(self, identifier: str, failover: bool) -> None:
        """RebootDBInstance (with or without failover): the real primary restarts, ``rebooting`` meanwhile."""
        if identifier != sandbox_aws.DB_INSTANCE:
            return
        self.aws.set_db_status("rebooting")

        def reboot() -> None:
            pg = self.postgres
            try:
                pg.shutdown(pg.primary)
                time.sleep(REBOOT_SECONDS)
                pg.restart(pg.primary)
            finally:
                self.aws.set_db_status("available")
        threading.Thread(target=reboot, name="sandbox-rds-reboot", daemon=True).start()

    def _cache_failover(self, group_id: str) -> None:
        """TestFailover: the clients' connections drop, as when a replica is promoted; the data stays."""
        self.redis.client().client_kill_filter(_type="normal", skipme=True)

    @property
    def api_pid(self) -> int | None:
        return self.api_process.pid if self.api_process and self.api_process.poll() is None else None

    def start_proxy(self) -> None:
        ports = self.proxy_ports
        routes = {"redis": [ports["redis"], self.redis.port], "primary": [ports["primary"], self.postgres.primary.port],
                  "api_https": [ports["api_https"], self.api_port]}
        tls = {"api_https": {"cert": str(self.api_certificate.cert), "key": str(self.api_certificate.key)}}
        self.proxy_process = self.warming.pop("proxy", None) or spawn(PROXY, log=self.root / "proxy.log", feed_later=True)
        feed(self.proxy_process, json.dumps({"admin_port": ports["admin"], "routes": routes, "tls": tls}))
        wait_until(lambda: requests.get(f"http://127.0.0.1:{ports['admin']}/health", timeout=1).ok, what="dependency proxy",
                   process=self.proxy_process, log=self.root / "proxy.log")

    def proxy_route(self, name: str, *, latency_ms: float = 0, blackhole: bool = False) -> None:
        response = requests.post(f"http://127.0.0.1:{self.proxy_ports['admin']}/routes/{name}", timeout=5,
                                 json={"latency_ms": latency_ms, "blackhole": blackhole})
        if response.status_code == 404:
            raise KeyError(f"no proxied dependency {name!r} (known: redis, primary)")
        response.raise_for_status()

    def reissue_api_certificate(self, *, names: tuple[str, ...] = LOOPBACK_NAMES, days: float = 90) -> None:
        """A new certificate for the HTTPS listener, served at once and re-imported into ACM under the same ARN:
        what happens when someone imports a renewal (or the wrong certificate)."""
        self.api_certificate = self.authority.issue("api", names=names, days=days)
        response = requests.post(f"http://127.0.0.1:{self.proxy_ports['admin']}/tls/api_https", timeout=5,
                                 json={"cert": str(self.api_certificate.cert), "key": str(self.api_certificate.key)})
        response.raise_for_status()
        self.aws.serve_certificate(*self.api_certificate.pem(), self.authority.ca_file.read_bytes())

    def start_api(self) -> None:
        if self.api_pid is not None:
            return
        settings = {"port": self.api_port, "version": self.aws.version_of(self.aws.service_task_definition()),
                    "token": self.api_token,
                    "dsn": self.postgres.dsn("entmoot_app", port=self.proxy_ports["primary"]),
                    "redis_url": f"redis://127.0.0.1:{self.proxy_ports['redis']}/0", "redis_password": self.redis.password,
                    "aws_endpoint": self.aws.endpoint, "aws_credentials": sandbox_aws.CREDENTIALS, "alb_dimension": self.aws.alb_dimension,
                    "target_group_dimension": self.aws.target_group_dimension,
                    "log_group": sandbox_aws.LOG_GROUP, "cluster": sandbox_aws.CLUSTER, "service": sandbox_aws.SERVICE,
                    "desired_count": self.aws.desired_count()}
        # Settings (with secrets) go through stdin, not argv, which any local user can read in /proc.
        self.api_process = self.warming.pop("api", None) or self._spawn_api()
        feed(self.api_process, json.dumps(settings))
        wait_until(lambda: self.api_health(), what="sandbox API", process=self.api_process, log=self.root / "api.log")

    def _spawn_api(self) -> subprocess.Popen:
        return spawn([sys.executable, "-m", "entmoot_ops.sandbox.api"], log=self.root / "api.log", feed_later=True)

    def api_admin(self, path: str, body: dict) -> Any:
        response = requests.post(f"http://127.0.0.1:{self.api_port}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.agent.stop()
        for name in list(self.active):
            self.undo(name)
        stop(self.api_process)
        stop(self.proxy_process)
        for waiting in self.warming.values():  # a start that failed before they were told their settings
            stop(waiting)
        self.redis.close()
        self.ssh_host.close()
        self.postgres.close()
        self.aws.stop()

    # ------------------------------------------------------------------------------------ components
    def component(self, name: str, action: str) -> dict:
        pg = self.postgres
        actions = {
            "api": (lambda: stop(self.api_process), self.start_api),
            "primary": (lambda: pg.shutdown(pg.primary), lambda: pg.restart(pg.primary)),
            "replica": (lambda: pg.shutdown(pg.replica), lambda: pg.restart(pg.replica)),
            "redis": (self.redis.close, self.redis.restart),
            "aws": (self.aws.stop, self.aws.start),
        }
        if name not in actions or action not in ("stop", "start"):
            raise KeyError(f"unknown component action {name}/{action}")
        actions[name][0 if action == "stop" else 1]()
        if action == "start":
            # Started means back to normal: the API has reconnected to whatever came back.
            wait_until(lambda: self.api_health()["status"] == "healthy", what="sandbox API healthy again", timeout=20)
        return {"component": name, "action": action}

    def component_pids(self) -> dict[str, int | None]:
        pg = self.postgres
        return {"api": self.api_pid, "primary": pg.primary.pid, "replica": pg.replica.pid, "redis": self.redis.pid}

    def pid_of(self, component: str) -> int | None:
        pids = self.component_pids()
        if component not in pids:
            raise KeyError(f"unknown component {component!r} (known: {', '.join(pids)})")
        return pids[component]

    def api_health(self) -> dict:
        return requests.get(f"http://127.0.0.1:{self.api_port}/health", timeout=2,
                            headers={"Authorization": f"Bearer {self.api_token}"}).json()

    # ---------------------------------------------------------------------------------------- faults
    def inject(self, name: str, params: dict) -> dict:
        with self.lock:
            if name in self.active:
                raise KeyError(f"fault {name} is already active")
            self.active[name] = faults.inject(self, name, params)
            return {"injected": name, "params": params}

    def undo(self, name: str) -> dict:
        with self.lock:
            fault = self.active.pop(name, None)
            if fault is None:
                raise KeyError(f"fault {name} is not active")
            fault.undo()
            return {"undone": name}

    def sync(self) -> dict:
        """Make what happened visible now: flush the API's logs and metrics (if it answers), run an agent tick."""
        if self.api_pid is not None:
            with contextlib.suppress(requests.RequestException):  # a killed or frozen API has nothing to flush
                self.api_admin("/_sandbox/flush", {})
        self.agent.tick()
        return {"synced": datetime.now(UTC).isoformat(), "agent_errors": self.agent.errors}

    def forget_traffic(self, seconds: float) -> dict:
        """Forget what the API served in the last ``seconds``: its ALB datapoints, its CPU and its log lines. A test
        that judges a window of traffic then judges only the traffic it sent, not what an earlier test left there."""
        self.sync()
        since = datetime.now(UTC) - timedelta(seconds=seconds)
        datapoints, log_events = self.forget_since(since, TRAFFIC_METRICS)
        return {"since": since.isoformat(), "datapoints": datapoints, "log_events": log_events}

    def forget_since(self, since: datetime, alb_metrics: tuple[str, ...] = ()) -> tuple[int, int]:
        """Forget the API's traffic since a moment: the load balancer's datapoints (``alb_metrics`` only, when
        given), the fleet's CPU, and the log lines. Returns the datapoints and the log lines forgotten."""
        datapoints = self.aws.rewind_metrics("AWS/ApplicationELB", since, alb_metrics)
        datapoints += self.aws.rewind_metrics("AWS/ECS", since, ("CPUUtilization",))
        return datapoints, self.aws.rewind_logs(since)

    def enforce_iam(self, policies: dict[str, dict]) -> dict:
        """From now on AWS calls are authorised as IAM would: the suite signs as the user of its mode."""
        self.aws.enforce_iam(policies)
        write_state(self.state_file, self.state())
        return self.state()

    # ------------------------------------------------------------------------------------------ state
    def state(self) -> dict:
        pg = self.postgres
        env = {
            "ENTMOOT_SANDBOX_AWS_ENDPOINT_URL": self.aws.endpoint,
            "ENTMOOT_SANDBOX_AWS_ACCESS_KEY_ID": sandbox_aws.SUITE_CREDENTIALS["aws_access_key_id"],
            "ENTMOOT_SANDBOX_AWS_SECRET_ACCESS_KEY": sandbox_aws.SUITE_CREDENTIALS["aws_secret_access_key"],
            "ENTMOOT_SANDBOX_API_URL": f"http://127.0.0.1:{self.api_port}",
            "ENTMOOT_SANDBOX_API_TOKEN": self.api_token,
            "ENTMOOT_SANDBOX_PG_PRIMARY_DSN": pg.dsn("entmoot_monitor"),
            "ENTMOOT_SANDBOX_PG_REPLICA1_DSN": pg.dsn("entmoot_monitor", server=pg.replica),
            "ENTMOOT_SANDBOX_PG_ADMIN_DSN": pg.dsn("entmoot_remediator"),
            "ENTMOOT_SANDBOX_REDIS_URL": self.redis.url,
            "ENTMOOT_SANDBOX_REDIS_PASSWORD": self.redis.password,
            "ENTMOOT_SANDBOX_CONTROL_URL": f"http://127.0.0.1:{self.control_port}",
            "ENTMOOT_SANDBOX_HTTPS_URL": f"https://localhost:{self.proxy_ports['api_https']}",
            "ENTMOOT_SANDBOX_CA_FILE": str(self.authority.ca_file),
            "ENTMOOT_SANDBOX_SSH_CONFIG": str(self.ssh_host.ssh_config),
            "ENTMOOT_SANDBOX_PG_CONFIG_FILE": str(pg.primary.datadir / "postgresql.conf"),
            "ENTMOOT_SANDBOX_PG_HBA_FILE": str(pg.primary.datadir / "pg_hba.conf"),
            "ENTMOOT_SANDBOX_REDIS_CONFIG_FILE": str(self.redis.config_file),
        }
        # Under IAM enforcement the suite signs as the user of its mode; check mode's is the default.
        iam = {mode: {"ENTMOOT_SANDBOX_AWS_ACCESS_KEY_ID": key["access_key_id"],
                      "ENTMOOT_SANDBOX_AWS_SECRET_ACCESS_KEY": key["secret_access_key"]} for mode, key in self.aws.iam_keys.items()}
        env.update(iam.get("check", {}))
        return {
            "env": env,
            "iam": iam,
            "pids": {"supervisor": os.getpid(), **self.component_pids(), "ssh": self.ssh_host.pid},
            "ports": {"api": self.api_port, "primary": pg.primary.port, "replica": pg.replica.port,
                      "redis": self.redis.port, "aws": self.aws.port, "control": self.control_port, "ssh": self.ssh_host.port,
                      **{f"proxy_{name}": port for name, port in self.proxy_ports.items()}},
            "secrets": [pg.passwords[r] for r in pg.passwords] + [self.redis.password, self.api_token]
                       + [key["secret_access_key"] for key in self.aws.iam_keys.values()],
            "faults": sorted(self.active),
            "throttled": dict(moto_extensions.iam.throttled),  # calls each throttled API will still refuse
            "timings": self.timings,
            "postgis": self.postgres.postgis,
            "cloudwatch_delay": list(self.aws.cloudwatch_delay),
            "root": str(self.root),
        }


def _capturing(run: Any, errors: list[BaseException]) -> Any:
    def wrapped() -> None:
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the starting thread
            errors.append(exc)
    return wrapped


def write_state(state_file: Path, state: dict) -> None:
    """Whole or not at all, and readable by its user alone (it holds the sandbox's passwords)."""
    temporary = state_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(state))
    temporary.chmod(0o600)
    temporary.replace(state_file)
