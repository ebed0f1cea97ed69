"""Endpoints that answer less kindly than the sandbox: a proxy in front of the sandbox's AWS endpoint that replaces
the real answer (for every operation, or for one) with what a load balancer, a cut connection or an incompatible
endpoint gives, and a TCP proxy in front of PostgreSQL, Redis or the API that cuts, stalls or slows what passes.

Both are real servers on 127.0.0.1; what the suite under test sends is forwarded unchanged (its SigV4 signature
included), so everything not replaced is the sandbox's own answer.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# What an AWS endpoint can answer besides the truth, each as a proxy in front of AWS has been seen to.
AWS_ANSWERS = ("html_500", "empty_200", "cut_in_half", "wrong_shape", "throttled", "closed", "too_late")
TCP_FAULTS = ("reset_mid_answer", "silent", "slow")


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 256, "short strings only"
    return (bytes([0x60 + len(data)]) if len(data) < 24 else bytes([0x78, len(data)])) + data


def _cbor_map(fields: dict[str, str]) -> bytes:
    """RPC v2 CBOR (CloudWatch's protocol in current botocore) for a flat map of short strings."""
    return bytes([0xA0 + len(fields)]) + b"".join(_cbor_text(k) + _cbor_text(v) for k, v in fields.items())


def _protocol(content_type: str, headers: dict[str, str]) -> str:
    if "cbor" in content_type or headers.get("smithy-protocol") == "rpc-v2-cbor":
        return "cbor"
    if "json" in content_type:
        return "json"
    return "xml"


def operation_of(path: str, headers: dict[str, str], body: bytes) -> str:
    """The AWS operation a request calls, in whichever protocol it came: JSON (X-Amz-Target), RPC v2 CBOR (the path),
    query (Action= in the form body)."""
    target = headers.get("x-amz-target", "")
    if target:
        return target.rsplit(".", 1)[-1]
    found = re.search(r"/operation/([A-Za-z]+)", path)
    if found:
        return found.group(1)
    action = parse_qs(body.decode("utf-8", "replace")).get("Action") or parse_qs(urlsplit(path).query).get("Action")
    return action[0] if action else "?"


class AwsAnswers:
    """``answer`` (one of AWS_ANSWERS, or None for the truth) for every operation, or only for ``operation``.
    ``too_late`` waits ``late_seconds`` before the real answer: longer than the suite's read timeout."""

    def __init__(self, upstream: str, answer: str | None = None, operation: str | None = None, late_seconds: float = 4.0):
        self.upstream = urlsplit(upstream)
        self.answer, self.operation, self.late_seconds = answer, operation, late_seconds
        self.calls: list[str] = []
        self.replaced: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                proxy._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                proxy._handle(self)

            def do_DELETE(self) -> None:  # noqa: N802
                proxy._handle(self)

            def do_PUT(self) -> None:  # noqa: N802
                proxy._handle(self)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection", "keep-alive")}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            answer = upstream.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            upstream.close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        operation = operation_of(handler.path, headers, body)
        self.calls.append(operation)
        replace = self.answer if self.operation in (None, operation) else None
        if replace is None:
            status, answer_headers, payload = self._forward(handler, body)
            self._send(handler, status, answer_headers, payload)
            return
        self.replaced.append(operation)
        protocol = _protocol(headers.get("content-type", ""), headers)
        if replace == "closed":  # no answer at all: the connection ends under the request
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if replace == "too_late":
            time.sleep(self.late_seconds)
            status, answer_headers, payload = self._forward(handler, body)
            with contextlib.suppress(OSError):  # the client gave up long ago
                self._send(handler, status, answer_headers, payload)
            return
        if replace == "html_500":
            # HTML as web servers write it (a doctype, void elements left open): not XML, as an XML error body would be.
            page = (b"<!DOCTYPE html>\n<html><head><meta charset=utf-8><title>500 Internal Server Error</title></head>"
                    b"<body><h1>Internal Server Error</h1><p>The server encountered an internal error.<br></body></html>")
            self._send(handler, 500, [("Content-Type", "text/html")], page)
        elif replace == "empty_200":
            self._send(handler, 200, [("Content-Type", headers.get("content-type", "text/xml"))], b"")
        elif replace == "cut_in_half":
            status, answer_headers, payload = self._forward(handler, body)
            self._send(handler, status, answer_headers, payload[: len(payload) // 2])
        elif replace == "wrong_shape":
            shaped = {"json": (b"[]", "application/x-amz-json-1.1"), "cbor": (b"\x80", "application/cbor"),
                      "xml": (b'<?xml version="1.0"?><Unexpected><Shape>1</Shape></Unexpected>', "text/xml")}[protocol]
            extra = [("Smithy-Protocol", "rpc-v2-cbor")] if protocol == "cbor" else []
            self._send(handler, 200, [("Content-Type", shaped[1]), *extra], shaped[0])
        elif replace == "throttled":
            if protocol == "json":
                error = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
                self._send(handler, 400, [("Content-Type", "application/x-amz-json-1.1")], error)
            elif protocol == "cbor":
                error = _cbor_map({"__type": "ThrottlingException", "message": "Rate exceeded"})
                self._send(handler, 400, [("Content-Type", "application/cbor"), ("Smithy-Protocol", "rpc-v2-cbor")], error)
            else:
                error = (b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
                         b"</Error><RequestId>r-1</RequestId></ErrorResponse>")
                self._send(handler, 400, [("Content-Type", "text/xml")], error)
        else:
            raise ValueError(f"unknown answer {replace!r}")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        handler.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


class TcpFault:
    """A TCP proxy to ``upstream_port`` on loopback that, once the client has sent something:
    ``reset_mid_answer``: forwards the first part of the first answer, then resets the connection;
    ``silent``: accepts and reads, and never answers (nor forwards);
    ``slow``: delays every answer chunk by ``delay_seconds``."""

    def __init__(self, upstream_port: int, fault: str, delay_seconds: float = 4.0):
        assert fault in TCP_FAULTS, fault
        self.upstream_port, self.fault, self.delay_seconds = upstream_port, fault, delay_seconds
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._open: list[socket.socket] = []
        self._closing = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closing.set()
        for sock in [self.listener, *self._open]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.fault == "silent":
            with contextlib.suppress(OSError):
                while client.recv(65536) and not self._closing.is_set():
                    pass
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            client.close()
            return
        self._open.append(upstream)
        if self.fault == "reset_mid_answer":
            self._reset_mid_answer(client, upstream)
            return
        threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
        self._pump(upstream, client, True)

    @staticmethod
    def _reset_mid_answer(client: socket.socket, upstream: socket.socket) -> None:
        """One thread only: a socket another thread is blocked reading is not released by close(), and sends no RST."""
        with contextlib.suppress(OSError):
            upstream.sendall(client.recv(65536))
            answer = upstream.recv(65536)
            client.sendall(answer[: max(1, len(answer) // 2)])
            # SO_LINGER with a zero timeout: close() sends RST, as a crashed peer or a middlebox does.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        upstream.close()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if answers and self.fault == "slow":
                    time.sleep(self.delay_seconds)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
