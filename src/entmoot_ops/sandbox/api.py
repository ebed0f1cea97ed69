"""An Entmoot-like API (own process): health, projects, buildings, optimisation jobs and a job worker.

It behaves like the real service where the checks look: a public /health with dependency checks and a storage
component, Bearer or API-key auth on /api/*,
PostgreSQL through a pool, a Redis cache with the runbook's TTLs, access logs shipped to CloudWatch Logs
and ALB-style metrics to CloudWatch. Its concurrency follows the ECS service's desired count, so that
scaling has an observable effect under load. Faults arrive on a loopback admin path.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import sys
import time
import uuid
from datetime import datetime, UTC
from typing import Any

import boto3
import botocore.config
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from entmoot_ops.sandbox import alb_metrics
from entmoot_ops.sandbox.api_model import (CONSTRAINTS_TTL, DRAIN_TIMEOUT, HEALTH_TIMEOUT, PROJECT_TTL, TASK_RATE, Faults, Fleet,
                                            InjectedError, Telemetry)

class App:
    def __init__(self, settings: dict[str, Any]):
        self.settings = settings
        self.version = settings["version"]
        self.faults = Faults()
        self.telemetry = Telemetry()
        self.error_debt = 0.0
        # When each request in flight began (by request id): a drain waits for those older than itself.
        self.in_flight: dict[int, float] = {}
        self.flushing = asyncio.Lock()
        self.fleet = Fleet(settings["desired_count"])
        # check= validates a pooled connection before use, so the API recovers when PostgreSQL restarts.
        self.pool = AsyncConnectionPool(settings["dsn"], min_size=2, max_size=10, open=False, timeout=5,
                                        check=AsyncConnectionPool.check_connection,
                                        kwargs={"connect_timeout": 2, "options": "-c statement_timeout=5000"})
        # One retry on a dropped connection, as a client that survives an ElastiCache failover is configured; a
        # timeout is not retried, so that a hung Redis costs one socket timeout.
        self.cache = aioredis.Redis.from_url(settings["redis_url"], password=settings["redis_password"],
                                             socket_timeout=2, socket_connect_timeout=2, decode_responses=True,
                                             retry=Retry(NoBackoff(), 1), retry_on_error=[redis.exceptions.ConnectionError])
        config = botocore.config.Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
        aws = dict(endpoint_url=settings["aws_endpoint"], region_name="us-east-1", config=config,
                   **settings["aws_credentials"])
        self.logs = boto3.client("logs", **aws)
        self.cloudwatch = boto3.client("cloudwatch", **aws)
        self.ecs = boto3.client("ecs", **aws)
        self.log_stream = f"api/{uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------------------------------------ routes
    async def health(self, request: web.Request) -> web.Response:
        async def database() -> None:
            async with self.pool.connection(timeout=HEALTH_TIMEOUT) as conn:
                await conn.execute("SELECT 1")

        async def probe(check: Any) -> str:
            try:
                await asyncio.wait_for(check(), HEALTH_TIMEOUT)
                return "ok"
            except Exception as exc:  # noqa: BLE001 - health reports, it does not crash
                return f"error: {type(exc).__name__}"

        # Both dependencies at once, each bounded: /health must answer well within a caller's read timeout.
        results = await asyncio.gather(probe(database), probe(self.cache.ping))
        checks = dict(zip(("database", "redis"), results, strict=True))
        if self.faults.degraded and self.faults.degraded_detail:
            checks["upstream"] = f"error: {self.faults.degraded_detail}"
        healthy = all(v == "ok" for v in checks.values()) and not self.faults.degraded
        # The real API's storage component: after a fallback to memory it still says "healthy" at the top.
        storage = ({"backend": "in-memory", "redis_ping": "skipped"} if self.faults.storage_fallback else
                   {"backend": "redis", "redis_ping": "ok" if checks["redis"] == "ok" else "failed"})
        # Like many services, it answers 200 while degraded: only the body tells.
        return web.json_response({"status": "healthy" if healthy else "degraded", "version": self.version, "checks": checks,
                                  "storage": storage})

    async def projects(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT id, name FROM projects ORDER BY id LIMIT 50")).fetchall()
        return web.json_response([{"id": r[0], "name": r[1]} for r in rows])

    async def project(self, request: web.Request) -> web.Response:
        project_id = int(request.match_info["id"])
        key = f"project:{project_id}"
        cached = await self.cache.get(key)
        if cached:
            return web.Response(text=cached, content_type="application/json")
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT p.id, p.name, count(b.id) FROM projects p LEFT JOIN buildings b ON b.project_id = p.id "
                "WHERE p.id = %s GROUP BY p.id", (project_id,))).fetchone()
        if row is None:
            raise web.HTTPNotFound(text='{"error": "no such project"}', content_type="application/json")
        body = json.dumps({"id": row[0], "name": row[1], "buildings": row[2]})
        await self.cache.set(key, body, ex=PROJECT_TTL)
        return web.Response(text=body, content_type="application/json")

    async def buildings(self, request: web.Request) -> web.Response:
        x, y, size = (float(request.query.get(k, d)) for k, d in (("x", 0), ("y", 0), ("size", 50)))
        key = f"constraints:{x}:{y}:{size}"
        cached = await self.cache.get(key)
        if cached:
            return web.Response(text=cached, content_type="application/json")
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT id, kind FROM buildings WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326)) LIMIT 100",
                (x, y, x + size, y + size))).fetchall()
        body = json.dumps([{"id": r[0], "kind": r[1]} for r in rows])
        await self.cache.set(key, body, ex=CONSTRAINTS_TTL)
        return web.Response(text=body, content_type="application/json")

    async def optimize(self, request: web.Request) -> web.Response:
        payload = await request.json()
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "INSERT INTO optimization_jobs (project_id, status) VALUES (%s, 'pending') RETURNING id",
                (int(payload["project_id"]),))).fetchone()
        return web.json_response({"job_id": row[0], "status": "pending"}, status=202)

    async def job(self, request: web.Request) -> web.Response:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT id, status FROM optimization_jobs WHERE id = %s",
                                            (int(request.match_info["id"]),))).fetchone()
        if row is None:
            raise web.HTTPNotFound()
        return web.json_response({"job_id": row[0], "status": row[1]})

    # --------------------------------------------------------------------------------- admin (loopback)
    async def set_faults(self, request: web.Request) -> web.Response:
        changes = await request.json()
        for name, value in changes.items():
            if not hasattr(self.faults, name):
                raise web.HTTPBadRequest(text=f"unknown fault {name}")
            setattr(self.faults, name, type(getattr(self.faults, name))(value))
        return web.json_response({**self.faults.__dict__, "version": self.version})

    async def set_version(self, request: web.Request) -> web.Response:
        """The agent switches traffic to a new deployment's tasks the moment ECS starts it (blue/green)."""
        self.version = (await request.json())["version"]
        return web.json_response({"version": self.version})

    async def flush_now(self, request: web.Request) -> web.Response:
        """Publish what was served. With ``{"drain": true}``, first let every request already in flight finish
        (up to ``DRAIN_TIMEOUT``): after a fault's undo, a request that began under it (held by a latency, a slow
        dependency) must be published with the fault's traffic, not after it."""
        body = await request.json() if request.can_read_body else {}
        waited = await self.drain() if body.get("drain") else 0.0
        await self.flush()
        return web.json_response({"flushed": True, "drained_seconds": round(waited, 3)})

    async def drain(self) -> float:
        began = time.monotonic()
        while any(start <= began for start in self.in_flight.values()) and time.monotonic() - began < DRAIN_TIMEOUT:
            await asyncio.sleep(0.02)
        return time.monotonic() - began

    def _error_due(self, rate: float) -> bool:
        """Exactly ``rate`` of requests fail (an accumulator, not a dice roll), so a test measures what it set."""
        self.error_debt += rate
        if self.error_debt >= 1:
            self.error_debt -= 1
            return True
        return False

    # --------------------------------------------------------------------------------------- middleware
    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        self.in_flight[id(request)] = time.monotonic()
        try:
            return await self.serve(request, handler)
        finally:
            del self.in_flight[id(request)]

    async def serve(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # The response time the load balancer records is the service model's (the turn in the fleet's queue and
        # the injected latency, as the model gives them) plus the real work of the handler: the same load gives the
        # same latency on a busy machine as on a quiet one, while a slow dependency still shows.
        error = None
        self.fleet.rate = self.faults.task_rate or TASK_RATE
        modelled = await self.fleet.turn()
        worked = 0.0
        try:
            # As the real service: /health is public, /api/* demands Bearer (the runbook's) or an API-key header.
            if (request.path.startswith("/api/") and not self.faults.auth_disabled
                    and request.headers.get("Authorization") != f"Bearer {self.settings['token']}"
                    and request.headers.get("X-Api-Key") != self.settings["token"]):
                raise web.HTTPUnauthorized(text='{"error": "unauthorized"}', content_type="application/json")
            error_rate, latency_ms = self.faults.effective(self.version)
            latency_ms += self.faults.path_latency_ms(request.path)
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
                modelled += latency_ms / 1000
            if request.path.startswith("/api/") and self._error_due(error_rate):
                raise InjectedError(self.faults.error_message)
            started = time.perf_counter()
            try:
                response = await handler(request)
            finally:
                worked = time.perf_counter() - started
            status = response.status
        except web.HTTPException as exc:
            response, status = exc, exc.status
        except Exception as exc:  # noqa: BLE001 - a 500 with the error in the access log, like the real app
            error = str(exc) if isinstance(exc, InjectedError) else f"{type(exc).__name__}: {exc}"
            response = web.json_response({"error": "internal error"}, status=500)
            status = 500
        self.telemetry.record(request.method, request.path, status, modelled + worked, error)
        if isinstance(response, web.HTTPException):
            raise response
        return response

    # ------------------------------------------------------------------------------------ background
    async def flush(self) -> None:
        """Publish what was served since the last flush. One flush at a time: a flush asked for (a fault's undo) waits
        for the periodic one in progress, whose batch would otherwise land after the undo has forgotten the fault's."""
        async with self.flushing:
            await self._publish()

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        service = [{"Name": "ClusterName", "Value": self.settings["cluster"]}, {"Name": "ServiceName", "Value": self.settings["service"]}]
        utilisation = self.fleet.utilisation()
        await loop.run_in_executor(None, lambda: self.cloudwatch.put_metric_data(Namespace="AWS/ECS", MetricData=[
            {"MetricName": "CPUUtilization", "Dimensions": service, "Value": utilisation, "Unit": "Percent", "StorageResolution": 1}]))
        batch = self.telemetry.drain()
        if not batch.requests and not batch.lines:
            return
        now = batch.started or datetime.now(UTC)
        metrics = [
            {"MetricName": "RequestCount", "Timestamp": now, "Value": batch.requests, "Unit": "Count"},
            *({"MetricName": f"HTTPCode_Target_{k}_Count", "Timestamp": now, "Value": v, "Unit": "Count"}
              for k, v in batch.by_class.items()),
        ]
        if batch.durations:
            values = list(batch.durations.items())[:150]
            metrics.append({"MetricName": "TargetResponseTime", "Timestamp": now, "Unit": "Seconds",
                            "Values": [v for v, _ in values], "Counts": [float(c) for _, c in values]})
        published = [d for m in metrics for d in alb_metrics.datums(m, self.settings["alb_dimension"], self.settings["target_group_dimension"])]
        await loop.run_in_executor(None, lambda: self.cloudwatch.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=published))
        for start in range(0, len(batch.lines), 5000):
            events = batch.lines[start:start + 5000]
            await loop.run_in_executor(None, lambda e=events: self.logs.put_log_events(
                logGroupName=self.settings["log_group"], logStreamName=self.log_stream, logEvents=e))

    async def flusher(self) -> None:
        while True:
            await asyncio.sleep(1)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the AWS endpoint may be stopped by a test
                print(f"flush failed: {exc}", file=sys.stderr, flush=True)

    async def follow_running_count(self) -> None:
        """Capacity follows the ECS service's *running* count, like the fleet behind the ALB: a scale-out helps
        once its tasks run, not when it is asked for."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1)
            try:
                answer = await loop.run_in_executor(None, lambda: self.ecs.describe_services(
                    cluster=self.settings["cluster"], services=[self.settings["service"]]))
                self.fleet.tasks = max(1, answer["services"][0]["runningCount"])
            except Exception:  # noqa: BLE001 - keep the last known capacity while AWS is away
                continue

    async def worker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.faults.worker_paused:
                continue
            try:
                async with self.pool.connection() as conn:
                    await conn.execute(
                        "UPDATE optimization_jobs SET status = 'completed', started_at = coalesce(started_at, now()), "
                        "completed_at = now() WHERE id IN (SELECT id FROM optimization_jobs WHERE status IN ('pending', 'running') "
                        "AND created_at > now() - interval '10 minutes' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 50)")
            except Exception as exc:  # noqa: BLE001
                print(f"worker: {exc}", file=sys.stderr, flush=True)

    async def startup(self, app: web.Application) -> None:
        try:
            await self.pool.open(wait=True, timeout=10)
        except Exception as exc:  # noqa: BLE001 - start degraded rather than not at all
            print(f"pool: {exc}", file=sys.stderr, flush=True)
        try:
            self.logs.create_log_stream(logGroupName=self.settings["log_group"], logStreamName=self.log_stream)
        except Exception as exc:  # noqa: BLE001
            print(f"log stream: {exc}", file=sys.stderr, flush=True)
        try:
            await self.flush()  # the service's CPUUtilization exists from the start, as it does on ECS
        except Exception as exc:  # noqa: BLE001
            print(f"first flush: {exc}", file=sys.stderr, flush=True)
        # Kept on the app: the event loop holds only weak references to tasks.
        self.tasks = [asyncio.create_task(c()) for c in (self.flusher, self.follow_running_count, self.worker)]

    async def date_header(self, request: web.Request, response: web.StreamResponse) -> None:
        """aiohttp writes Date only where the answer has none: a skewed clock writes its own."""
        if self.faults.clock_skew_seconds:
            response.headers["Date"] = email.utils.formatdate(time.time() + self.faults.clock_skew_seconds, usegmt=True)

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        app.on_response_prepare.append(self.date_header)
        app.router.add_get("/health", self.health)
        app.router.add_get("/api/projects", self.projects)
        app.router.add_get("/api/projects/{id}", self.project)
        app.router.add_get("/api/buildings", self.buildings)
        app.router.add_post("/api/optimize", self.optimize)
        app.router.add_get("/api/jobs/{id}", self.job)
        app.router.add_post("/_sandbox/faults", self.set_faults)
        app.router.add_post("/_sandbox/flush", self.flush_now)
        app.router.add_post("/_sandbox/version", self.set_version)
        app.on_startup.append(self.startup)
        return app


def main() -> None:
    settings = json.loads(sys.stdin.readline())
    web.run_app(App(settings).build(), host="127.0.0.1", port=settings["port"], access_log=None, print=None,
                handle_signals=True)


if __name__ == "__main__":
    main()
