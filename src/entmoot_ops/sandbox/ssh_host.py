"""A real SSH host on loopback: Debian's OpenSSH server, with host and client keys made for each run, so that the
host checks go through testinfra's SSH backend as they do to a bastion or a self-managed database host.

It runs as the sandbox's service user (the one PostgreSQL runs as when we are root), and logs in only that user.
Its sessions get a PATH of their own, a directory of links to the machine's programs: a fault takes a tool off it,
as a bastion built without that tool lacks it. Every command a client runs is logged to ``audit.log`` first (a
forced command in authorized_keys), so a test can hold the host checks to reading only. ``ssh_config`` holds everything a client needs (``Host``
``entmoot-sandbox-host``), the pinned host key included.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from entmoot_ops.sandbox.processes import chown_tree, free_port, process_tree, run, service_user, spawn, stop, wait_until

HOST_ALIAS = "entmoot-sandbox-host"
# Where the session's programs come from: the links in the host's PATH directory.
PROGRAM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def find_sshd() -> Path:
    found = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd",) if Path(p).exists()), None)
    if found is None:
        raise RuntimeError("no sshd: install Debian's openssh-server (the sandbox's SSH host runs it)")
    return Path(found)


@dataclass
class SshHost:
    root: Path
    user: str | None = field(default_factory=service_user)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def directory(self) -> Path:
        return self.root / "ssh"

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def audit_log(self) -> Path:
        return self.directory / "audit.log"

    @property
    def login(self) -> str:
        return self.user or getpass.getuser()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def start(self) -> None:
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        for key in ("host_key", "client_key"):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"entmoot-sandbox-{key}", "-f", str(directory / key)])
        # Every command a client runs is written to audit.log, then run: a forced command, as an audited bastion does.
        audit = directory / "audit.sh"
        audit.write_text(f'#!/bin/sh\nprintf "%s\\n" "$SSH_ORIGINAL_COMMAND" >> {self.audit_log}\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
        audit.chmod(0o755)
        (directory / "authorized_keys").write_text(f'command="{audit}" ' + (directory / "client_key.pub").read_text())
        host_key = (directory / "host_key.pub").read_text().split()[:2]
        (directory / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {' '.join(host_key)}\n")
        self._link_programs()
        (directory / "sshd_config").write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {self.port}", f"HostKey {directory / 'host_key'}",
            f"AuthorizedKeysFile {directory / 'authorized_keys'}", f"PidFile {directory / 'sshd.pid'}",
            # Unprivileged: no PAM and no privilege separation to another user; the key is the only way in.
            "UsePAM no", "StrictModes no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            f"AllowUsers {self.login}", f"SetEnv PATH={self.bin_dir}", ""]))
        # The client's side: ssh refuses a private key that others can read, and ours runs as whoever runs the suite.
        (directory / "client_key").chmod(0o600)
        self.ssh_config.write_text("\n".join([
            f"Host {HOST_ALIAS}", "  HostName 127.0.0.1", f"  Port {self.port}", f"  User {self.login}",
            f"  IdentityFile {directory / 'client_key'}", "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {directory / 'known_hosts'}", "  StrictHostKeyChecking yes", "  BatchMode yes",
            # Loopback needs no post-quantum key exchange: OpenSSH 9's default (sntrup761) costs 70 ms a connection.
            "  KexAlgorithms curve25519-sha256", ""]))
        chown_tree(directory, self.user)
        for private in ("client_key", "ssh_config", "known_hosts"):  # the client (the suite) keeps its own side
            os.chown(directory / private, os.getuid(), os.getgid())
        log = self.root / "sshd.log"
        self.process = spawn([str(find_sshd()), "-D", "-e", "-f", str(directory / "sshd_config")], log=log, user=self.user)
        wait_until(self._answers, what="SSH host", process=self.process, log=log)

    def _link_programs(self) -> None:
        self.bin_dir.mkdir(exist_ok=True)
        for directory in PROGRAM_DIRS:
            if not os.path.isdir(directory):
                continue
            for entry in os.scandir(directory):
                link = self.bin_dir / entry.name
                if not link.exists() and not link.is_symlink():
                    link.symlink_to(entry.path)

    def _answers(self) -> bool:
        """sshd greets a connection with its version line: it is up (a login would cost a key exchange)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
            return connection.recv(64).startswith(b"SSH-")

    def remove_program(self, name: str) -> Path:
        """Take a program off the host's PATH; returns where it pointed, for :meth:`restore_program`."""
        link = self.bin_dir / name
        if not link.is_symlink():
            raise KeyError(f"no program {name!r} on the SSH host's PATH")
        target = Path(os.readlink(link))
        link.unlink()
        return target

    def restore_program(self, name: str, target: Path) -> None:
        (self.bin_dir / name).symlink_to(target)

    def close(self) -> None:
        # A connection's processes outlive the listener: a client's lingering one (ControlPersist) would keep them.
        sessions = process_tree(self.process.pid)[1:] if self.pid is not None else []
        stop(self.process)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
