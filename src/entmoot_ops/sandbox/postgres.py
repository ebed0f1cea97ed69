"""A PostgreSQL 15 primary with a streaming replica, run as an unprivileged user when we are root."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from entmoot_ops.sandbox.processes import chown_tree, free_port, run, service_user, spawn, stop, wait_until

ROLES = ("postgres", "entmoot_app", "entmoot_monitor", "entmoot_remediator")


def find_bindir() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries (initdb) not found; install postgresql")


@dataclass
class Server:
    name: str
    datadir: Path
    port: int
    options: list[str]
    process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None


@dataclass
class PostgresPair:
    root: Path
    user: str | None = field(default_factory=service_user)
    passwords: dict[str, str] = field(default_factory=lambda: {r: secrets.token_urlsafe(18) for r in ROLES})
    max_connections: int = 60
    # Entmoot's geometry is PostGIS's; where it is not installed (or ENTMOOT_SANDBOX_POSTGIS=off), box and stand-ins.
    postgis: bool = field(default_factory=lambda: os.environ.get("ENTMOOT_SANDBOX_POSTGIS", "on") != "off")

    def __post_init__(self) -> None:
        self.bindir = find_bindir()
        self.root.mkdir(parents=True, exist_ok=True)
        chown_tree(self.root, self.user)
        common = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                  "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                  "-c", "shared_preload_libraries=pg_stat_statements", "-c", "track_io_timing=on",
                  "-c", f"max_connections={self.max_connections}", "-c", "hot_standby_feedback=on",
                  "-c", "wal_level=replica", "-c", "max_wal_senders=6", "-c", "max_replication_slots=6",
                  "-c", "wal_retrieve_retry_interval=500ms"]
        self.primary = Server("primary", self.root / "primary", free_port(), common)
        self.replica = Server("replica", self.root / "replica", free_port(), common)

    def dsn(self, role: str, *, server: Server | None = None, database: str = "entmoot", port: int | None = None) -> str:
        """``port``: another way to the server (the dependency proxy's)."""
        server = server or self.primary
        return f"host=127.0.0.1 port={port or server.port} dbname={database} user={role} password={self.passwords[role]}"

    def local_dsn(self, role: str, server: Server) -> str:
        """Through the Unix socket, trusted: for the sandbox's own agent, which connects every second (a password
        over TCP costs a SCRAM exchange, PBKDF2 on both sides, each time)."""
        return f"host={self.root} port={server.port} dbname=entmoot user={role}"

    def _start(self, server: Server) -> None:
        log = self.root / f"{server.name}.log"
        server.process = spawn([str(self.bindir / "postgres"), "-D", str(server.datadir), "-p", str(server.port), *server.options],
                               log=log, user=self.user)
        wait_until(lambda: psycopg.connect(self.dsn("postgres", server=server, database="postgres"), connect_timeout=1).close() is None,
                   what=f"PostgreSQL {server.name}", process=server.process, log=log)

    def start_in_background(self) -> Callable[[], float]:
        """Start on a thread. The call returned waits for the start, raises what it raised, and returns how long
        it took."""
        failed: list[BaseException] = []
        took: list[float] = []

        def starting() -> None:
            began = time.monotonic()
            try:
                self.start()
            except BaseException as exc:  # noqa: BLE001 - raised again by whoever waits for the start
                failed.append(exc)
            took.append(round(time.monotonic() - began, 3))

        thread = threading.Thread(target=starting, name="postgres-start", daemon=True)
        thread.start()

        def wait() -> float:
            thread.join()
            if failed:
                raise failed[0]
            return took[0]

        return wait

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.passwords["postgres"])
        chown_tree(pwfile, self.user)
        run([str(self.bindir / "initdb"), "-D", str(self.primary.datadir), "-U", "postgres", "--pwfile", str(pwfile),
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], user=self.user)
        pwfile.unlink()
        self._enable_ssl()
        self._start(self.primary)
        self._create_schema()
        run([str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
             "-D", str(self.replica.datadir), "-R", "-X", "stream", "-C", "-S", "replica1", "--no-sync", "--checkpoint=fast",
             "-d", f"application_name=replica1 password={self.passwords['postgres']}"], user=self.user)
        self._start(self.replica)

    def _enable_ssl(self) -> None:
        """``ssl = on`` in postgresql.conf, with a certificate of its own CA, as a self-managed server is set up (the
        host checks read the file); the replica's copy of the data directory carries it. Clients' default sslmode
        (prefer) then encrypts without verifying."""
        # Imported here, on the start's thread: PostgreSQL's start begins before the sandbox's imports.
        from entmoot_ops.sandbox.certificates import Authority

        directory = self.root / "tls"
        directory.mkdir(exist_ok=True)
        issued = Authority(directory).issue("server")
        chown_tree(directory, self.user)
        with (self.primary.datadir / "postgresql.conf").open("a") as conf:
            conf.write(f"\nssl = on\nssl_cert_file = '{issued.cert}'\nssl_key_file = '{issued.key}'\n")

    def _create_schema(self) -> None:
        with psycopg.connect(self.dsn("postgres", database="postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE ROLE entmoot_app LOGIN PASSWORD '{self.passwords['entmoot_app']}'")
            admin.execute(f"CREATE ROLE entmoot_monitor LOGIN PASSWORD '{self.passwords['entmoot_monitor']}' IN ROLE pg_monitor")
            # pg_read_all_stats: without it, other roles' sessions show no state, and nothing would match. Membership
            # of the tables' owner: ANALYZE, VACUUM, REINDEX and the archive need it, as the RDS master user has it.
            admin.execute(f"CREATE ROLE entmoot_remediator LOGIN PASSWORD '{self.passwords['entmoot_remediator']}' "
                          "IN ROLE pg_signal_backend, pg_read_all_stats, entmoot_app")
            admin.execute("CREATE DATABASE entmoot OWNER entmoot_app")
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as admin:
            admin.execute("CREATE EXTENSION pg_stat_statements")
            self.postgis = self.postgis and admin.execute(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'").fetchone()[0] > 0
            if self.postgis:
                admin.execute("CREATE EXTENSION postgis")
            else:
                admin.execute(Path(__file__).with_name("spatial_fallback.sql").read_text())
        with psycopg.connect(self.dsn("entmoot_app"), autocommit=True) as app:
            app.execute((Path(__file__).with_name("schema.sql")).read_text().replace(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;", "").replace(
                "GEOMETRY_TYPE", "geometry(Polygon, 4326)" if self.postgis else "box"))
            app.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO entmoot_monitor")
            app.execute("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO entmoot_monitor")
            for kind in ("TABLES", "SEQUENCES"):  # and those the application creates later
                app.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON {kind} TO entmoot_monitor")
            # ANALYZE once the seed's writes are in the statistics: run in the same batch, it would be followed by
            # their counts and every table would read as modified since its ANALYZE.
            app.execute("SELECT pg_stat_force_next_flush()")
            app.execute("ANALYZE")
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as admin:
            # The seed is the sandbox's making, not the application's workload: its inserts (20,000 geometries take
            # a second on a busy machine) would be the top statements' slowest.
            admin.execute("SELECT pg_stat_statements_reset()")

    def restart(self, server: Server) -> None:
        if server.pid is None:
            self._start(server)
        self.wait_streaming()

    def wait_streaming(self) -> None:
        """Back to normal means the replica streams again, not merely that both servers accept connections."""
        if self.replica.pid is None or self.primary.pid is None:
            return

        def streaming() -> bool:
            with psycopg.connect(self.dsn("postgres", database="postgres"), connect_timeout=1) as conn:
                return conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()[0] > 0

        wait_until(streaming, what="replica streaming", timeout=30)

    def shutdown(self, server: Server) -> None:
        stop(server.process, sig=2)  # SIGINT: PostgreSQL's "fast" shutdown

    def close(self) -> None:
        self.shutdown(self.replica)
        self.shutdown(self.primary)
