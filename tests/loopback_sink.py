"""A loopback HTTPS server that records what it is sent: the receiving end of Slack's incoming webhooks, PagerDuty's
Events API v2 and a generic JSON webhook, as their real endpoints answer them (Slack ``ok``, PagerDuty 202 with a
dedup_key). Set ``status`` to make it refuse. HTTPS, as PagerDuty's client accepts no other scheme: a client trusts
its certificate through ``trust`` (SSL_CERT_FILE for urllib and httpx, REQUESTS_CA_BUNDLE for requests)."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from loopback_logs import loopback_certificate


@dataclass
class Received:
    path: str
    body: Any
    raw: str


@dataclass
class Sink:
    directory: Path
    received: list[Received] = field(default_factory=list)
    status: int | None = None  # None: answer as the real service does

    def __post_init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                sink.received.append(Received(self.path, json.loads(raw) if raw else None, raw))
                if sink.status is not None:
                    self._answer(sink.status, "text/plain", b"refused")
                elif self.path.endswith("/v2/enqueue"):
                    key = (json.loads(raw) if raw else {}).get("dedup_key") or "generated"
                    self._answer(202, "application/json", json.dumps({"status": "success", "dedup_key": key}).encode())
                else:
                    self._answer(200, "text/plain", b"ok")

            def _answer(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.ca_bundle, key = loopback_certificate(self.directory)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.ca_bundle, key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    @property
    def trust(self) -> dict[str, str]:
        return {"SSL_CERT_FILE": str(self.ca_bundle), "REQUESTS_CA_BUNDLE": str(self.ca_bundle)}

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path.startswith(path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
