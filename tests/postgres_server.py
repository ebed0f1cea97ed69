"""A PostgreSQL server of a test's own (not the sandbox's application database): Debian's binaries, a data directory
in the test's temporary directory, a role with a password over TCP on 127.0.0.1, as a team's shared database is."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from entmoot_ops.sandbox.postgres import find_bindir
from entmoot_ops.sandbox.processes import chown_tree, free_port, run, service_user, spawn, stop, wait_until


@contextlib.contextmanager
def postgres_server(*, database: str = "entmoot_history") -> Iterator[str]:
    """Yield the DSN of a running server's ``database``, owned by a role of its own; stopped and removed after."""
    bindir, user = find_bindir(), service_user()
    # Not under pytest's temporary directory: the server runs as an unprivileged user, who may not enter root's.
    root = Path(tempfile.mkdtemp(prefix="entmoot-history-postgres-"))
    chown_tree(root, user)
    password = secrets.token_urlsafe(12)
    pwfile = root / "pwfile"
    pwfile.write_text(password)
    chown_tree(pwfile, user)
    run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--pwfile", str(pwfile), "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], user=user)
    pwfile.unlink()
    port, log = free_port(), root / "postgres.log"
    process = spawn([str(bindir / "postgres"), "-D", str(root / "data"), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                     "-c", f"unix_socket_directories={root}", "-c", "fsync=off", "-c", "max_connections=40"], log=log, user=user)
    admin = f"host=127.0.0.1 port={port} dbname=postgres user=postgres password={password}"
    try:
        wait_until(lambda: psycopg.connect(admin, connect_timeout=1).close() is None, what="PostgreSQL", process=process, log=log)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"CREATE ROLE entmoot_history LOGIN PASSWORD '{password}'")
            connection.execute(f"CREATE DATABASE {database} OWNER entmoot_history")
        yield f"host=127.0.0.1 port={port} dbname={database} user=entmoot_history password={password}"
    finally:
        stop(process, sig=signal.SIGINT)  # fast shutdown: a test's sessions may still be open
        shutil.rmtree(root, ignore_errors=True)
