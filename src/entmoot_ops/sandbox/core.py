"""The sandbox's core as its agent and its faults see it: the state they read and the admin calls they make.

The supervisor (:class:`entmoot_ops.sandbox.supervisor.Sandbox`) starts and stops the processes, serves the control
interface, and owns the agent and the active faults; it satisfies these protocols. The agent and the faults import
this module, never the supervisor, which imports them: each is handed the narrow interface it uses, not the whole
``Sandbox``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from entmoot_ops.sandbox.aws import Aws
    from entmoot_ops.sandbox.postgres import PostgresPair
    from entmoot_ops.sandbox.redis_server import RedisServer
    from entmoot_ops.sandbox.ssh_host import SshHost


class Core(Protocol):
    """What the agent reads and calls: the AWS emulation, the real servers, the API's process and its admin endpoint."""

    aws: Aws
    postgres: PostgresPair
    redis: RedisServer

    @property
    def api_pid(self) -> int | None: ...

    def api_admin(self, path: str, body: dict) -> Any: ...


class AgentControls(Protocol):
    """The agent as a fault drives it: the simulated loads it publishes, and the calls that publish or forget now."""

    storage_fill_bytes: int
    cpu_fill_percent: float
    stuck_rollout: bool
    leaked_memory_percent: float | None
    rollout_moving: bool

    def tick(self) -> None: ...

    def rewind(self, namespace: str, since: datetime) -> int: ...

    def restore_rds(self, since: datetime) -> None: ...


class Target(Core, Protocol):
    """What a fault acts on: the core, the agent's controls, the SSH host, the components, the proxy's routes and the
    API's certificate."""

    agent: AgentControls
    ssh_host: SshHost

    def api_health(self) -> dict: ...

    def component(self, name: str, action: str) -> dict: ...

    def pid_of(self, component: str) -> int | None: ...

    def proxy_route(self, name: str, *, latency_ms: float = 0, blackhole: bool = False) -> None: ...

    def forget_since(self, since: datetime, alb_metrics: tuple[str, ...] = ()) -> tuple[int, int]: ...

    def reissue_api_certificate(self, *, names: tuple[str, ...] = ..., days: float = 90) -> None: ...
