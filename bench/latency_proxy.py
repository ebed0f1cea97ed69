"""Loopback TCP routes that add a fixed round-trip time and nothing else, as a distant network does.

Each chunk reaches the other side half a round trip after it was sent, in order and pipelined (a long answer is late
by half a round trip, not by half a round trip per chunk, as in Toxiproxy's latency model), and a new connection
carries nothing before its handshake's round trip has passed. The round-trip time can change between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time

CHUNK = 65536


class LatencyProxy:
    def __init__(self) -> None:
        self.rtt_ms = 0.0
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="latency-proxy")
        self._thread.start()

    def route(self, upstream: tuple[str, int]) -> int:
        """A new listening port on 127.0.0.1 in front of ``upstream``."""
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(
            lambda r, w: self._connection(r, w, upstream), "127.0.0.1", 0), self._loop).result()
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                          upstream: tuple[str, int]) -> None:
        half = self.rtt_ms / 2000
        accepted = time.monotonic()
        await asyncio.sleep(half)  # the SYN's way there
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*upstream)
        except OSError:
            client_writer.close()
            return
        # The client believes it is connected at once; its first bytes leave after the handshake's round trip.
        await asyncio.gather(self._direction(client_reader, upstream_writer, half, not_before=accepted + 3 * half),
                             self._direction(upstream_reader, client_writer, half, not_before=0.0))

    @staticmethod
    async def _direction(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, half: float, not_before: float) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                queue.put_nowait((max(time.monotonic() + half, not_before), data))
                if not data:
                    break
            await delivering
        except (ConnectionError, asyncio.CancelledError):
            delivering.cancel()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def close(self) -> None:
        for server in self._servers:
            self._loop.call_soon_threadsafe(server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)


_ADDRESS = re.compile(r"(?P<scheme>[a-z]+://(?:[^@/]*@)?)(?P<host>127\.0\.0\.1|localhost):(?P<port>\d+)")
_DSN_PORT = re.compile(r"\bport=(?P<port>\d+)")


def proxied(value: str, proxy: LatencyProxy) -> str:
    """A URL or a libpq DSN on loopback, pointed at a new route of ``proxy`` in front of it."""
    url = _ADDRESS.search(value)
    if url:
        port = proxy.route(("127.0.0.1", int(url["port"])))
        return value[:url.start("port")] + str(port) + value[url.end("port"):]
    dsn = _DSN_PORT.search(value)
    if dsn:
        port = proxy.route(("127.0.0.1", int(dsn["port"])))
        return value[:dsn.start("port")] + str(port) + value[dsn.end("port"):]
    raise ValueError("neither a URL nor a DSN on loopback")
