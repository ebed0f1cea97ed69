"""A loopback TCP proxy in front of the API's dependencies (own process): what the API sees of Redis and the
PostgreSQL primary goes through it, so that a fault can make a dependency slow (latency on every answer) or a
black hole without touching the server itself. A black hole is a network partition: nothing passes either way
and new connections hang, but nothing is lost; when it heals, what waited goes through, as TCP retransmits. The suite's
own probes connect directly: the fault is between the application and its dependency, as a network fault is.

It also terminates TLS in front of the API, as the ALB's HTTPS listener does: a route listed under ``"tls"``
serves the certificate named there, and ``POST /tls/NAME {"cert": path, "key": path}`` replaces it (new
handshakes get the new one, as when ACM renews or someone imports another).

Settings come as one JSON line on stdin: {"admin_port": N, "routes": {"redis": [listen_port, upstream_port], ...},
"tls": {"api_https": {"cert": path, "key": path}}}.
``POST /routes/NAME {"latency_ms": 800, "blackhole": false}`` on the admin port changes a route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
from dataclasses import dataclass, field

from aiohttp import web

CHUNK = 65536


@dataclass
class Route:
    upstream_port: int
    latency_ms: float = 0.0
    flowing: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: a black hole

    def __post_init__(self) -> None:
        self.flowing.set()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route, answers: bool) -> None:
    """Copy one direction; answers (upstream to client) carry the latency; a black hole holds everything."""
    try:
        while True:
            await route.flowing.wait()
            data = await reader.read(CHUNK)
            if not data:
                break
            if answers and route.latency_ms:
                await asyncio.sleep(route.latency_ms / 1000)
            await route.flowing.wait()
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(route: Route):
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        await route.flowing.wait()  # in a black hole, a new connection is accepted by the kernel, then hangs
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", route.upstream_port)
        except OSError:
            client_writer.close()  # the dependency itself is down: the client sees its connection drop
            return
        await asyncio.gather(_pump(client_reader, upstream_writer, route, answers=False),
                             _pump(upstream_reader, client_writer, route, answers=True))
    return handle


def _tls_context(pair: dict) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair["cert"], pair["key"])
    return context


async def serve(settings: dict) -> None:
    routes = {name: Route(upstream) for name, (_, upstream) in settings["routes"].items()}
    contexts = {name: _tls_context(pair) for name, pair in settings.get("tls", {}).items()}
    servers = [await asyncio.start_server(_handler(routes[name]), "127.0.0.1", listen, ssl=contexts.get(name))
               for name, (listen, _) in settings["routes"].items()]

    async def change(request: web.Request) -> web.Response:
        route = routes.get(request.match_info["name"])
        if route is None:
            return web.json_response({"error": f"no route {request.match_info['name']}"}, status=404)
        body = await request.json()
        route.latency_ms = float(body.get("latency_ms", 0))
        if body.get("blackhole"):
            route.flowing.clear()
        else:
            route.flowing.set()
        return web.json_response({"latency_ms": route.latency_ms, "blackhole": not route.flowing.is_set()})

    async def reload(request: web.Request) -> web.Response:
        context = contexts.get(request.match_info["name"])
        if context is None:
            return web.json_response({"error": f"no TLS route {request.match_info['name']}"}, status=404)
        pair = await request.json()
        context.load_cert_chain(pair["cert"], pair["key"])
        return web.json_response({"cert": pair["cert"]})

    app = web.Application()
    app.router.add_post("/routes/{name}", change)
    app.router.add_post("/tls/{name}", reload)
    app.router.add_get("/health", lambda request: web.json_response({"routes": sorted(routes)}))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings["admin_port"]).start()
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            await stack.enter_async_context(server)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(json.loads(sys.stdin.readline())))
