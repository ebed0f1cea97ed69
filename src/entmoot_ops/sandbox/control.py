"""The sandbox's control interface: an HTTP server on loopback through which its handle injects and undoes faults,
syncs, forgets traffic and reads its state; and the process that serves it until its parent goes."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from collections.abc import Callable
from typing import Any


from entmoot_ops.sandbox.postgres import PostgresPair
from entmoot_ops.sandbox.supervisor import Sandbox, write_state


def _handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Control(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet: the tests read their own output
            return

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, method: str) -> None:
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            try:
                if method == "GET" and parts == ["state"]:
                    result = sandbox.state()
                elif method == "POST" and len(parts) == 2 and parts[0] == "faults":
                    result = sandbox.inject(parts[1], body)
                elif method == "DELETE" and len(parts) == 2 and parts[0] == "faults":
                    result = sandbox.undo(parts[1])
                elif method == "POST" and len(parts) == 3 and parts[0] == "components":
                    result = sandbox.component(parts[1], parts[2])
                elif method == "POST" and parts == ["sync"]:
                    result = sandbox.sync()
                elif method == "POST" and parts == ["iam"]:
                    result = sandbox.enforce_iam(body["policies"])
                elif method == "POST" and parts == ["forget-traffic"]:
                    result = sandbox.forget_traffic(float(body["seconds"]))
                else:
                    self._answer(404, {"error": f"no route {method} {self.path}"})
                    return
            except (KeyError, TypeError) as exc:
                self._answer(400, {"error": str(exc).strip("'\"")})
                return
            except Exception as exc:  # noqa: BLE001 - the caller gets the reason, the sandbox lives on
                self._answer(500, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._answer(200, result)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

    return Control


def serve(state_file: Path, parent_pid: int | None, root: Path, postgres: PostgresPair, postgres_started: Callable[[], float]) -> int:
    done = threading.Event()
    # From here a Ctrl-C or SIGTERM, even during the start, ends in the finally below: servers stopped, directory gone.
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    sandbox = None
    try:
        sandbox = Sandbox(root, postgres, postgres_started)
        sandbox.start()
        server = ThreadingHTTPServer(("127.0.0.1", sandbox.control_port), _handler(sandbox))
        threading.Thread(target=server.serve_forever, name="sandbox-control", daemon=True).start()
        sandbox.state_file = state_file
        write_state(state_file, sandbox.state())
        # Started (the collector was off since the process began, see __main__): what the start built, moto's
        # seeded backends and botocore's models, lives as long as the sandbox. Collected once, then frozen, it is
        # not walked again by each full collection.
        gc.collect()
        gc.freeze()
        gc.enable()
        while not done.wait(0.5):
            if parent_pid is not None and os.getppid() != parent_pid:
                break  # whoever started us is gone: do not linger
        server.shutdown()
        return 0
    except Exception as exc:  # noqa: BLE001 - reported as one line to whoever started us
        state_file.with_suffix(".error").write_text(f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        if sandbox is not None:
            sandbox.close()
        else:  # its start still runs on its thread: stopped once it is done
            with contextlib.suppress(BaseException):
                postgres_started()
            postgres.close()
        shutil.rmtree(root, ignore_errors=True)
