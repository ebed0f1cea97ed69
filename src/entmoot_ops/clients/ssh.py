"""SSH connections to hosts (testinfra over OpenSSH's ControlMaster), shared by every environment of the run."""

from __future__ import annotations

import contextlib
import subprocess

from testinfra.host import Host



SSH_PERSIST_SECONDS = 10  # an SSH connection outlives the run by this much: the next command reuses it meanwhile


# This process's SSH connections by control path: shared by every environment that reaches a host the same way, so
# one environment's end does not close the connection the next one is about to use.
open_connections: dict[str, Host] = {}


def close_ssh_connections() -> None:
    """The run's shared SSH connections end with the run, not SSH_PERSIST_SECONDS later. ``-O stop``, not ``exit``:
    a command another process (an xdist sibling) is running through the same connection finishes first."""
    while open_connections:
        _, host = open_connections.popitem()
        backend = host.backend
        command = ["ssh", *(["-F", backend.ssh_config] if backend.ssh_config else []), "-o", f"ControlPath={backend.controlpath}",
                   "-O", "stop", backend.host.name]
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(command, capture_output=True, timeout=5)
