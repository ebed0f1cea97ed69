"""Loopback stand-ins for GCP Cloud Logging and Azure Monitor Logs: each speaks its service's REST API for the
calls the suite's backends make (and its credential chain's token call), over real HTTP(S), from entries the test
gives it. The SDKs run unpatched against them.

- GCP: ``POST /token`` (a service account's signed JWT exchanged for a token, as Application Default Credentials do
  with a key file) and
  ``POST /v2/entries:list`` with the Logging filter forms the backend writes (``AND`` of ``field op value``;
  severities ordered), ``orderBy`` and page tokens.
- Azure: the App Service managed-identity endpoint (``GET /msi/token``) and, over TLS as the SDK demands for a
  bearer token, ``POST /v1/workspaces/{id}/query`` with the KQL forms the backend writes and the ``timespan``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "loopback-access-token"
SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]


@dataclass
class Calls:
    paths: list[str] = field(default_factory=list)

    def count(self, fragment: str) -> int:
        return sum(fragment in p for p in self.paths)


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.calls.paths.append(self.path)
        self.server.app.get(self)

    def do_POST(self) -> None:  # noqa: N802
        self.server.calls.paths.append(self.path)
        self.server.app.post(self, self._body())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: Any, tls: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app, self.calls = app, Calls()
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


# ------------------------------------------------------------------------------------------------- GCP
_GCP_TEST = re.compile(r'\s*([\w.]+)\s*(>=|<=|!=|=|>|<)\s*("(?:[^"]*)"|\S+)\s*')


def _gcp_matches(entry: dict, condition: str) -> bool:
    test = _GCP_TEST.fullmatch(condition)
    if not test:
        raise ValueError(f"unsupported filter term {condition!r}")
    path, op, raw = test.groups()
    expected = raw.strip('"')
    value: Any = entry
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return False
    if path == "severity":
        value, expected = SEVERITIES.index(value), SEVERITIES.index(expected)
    elif path == "timestamp":
        value, expected = _moment(value), _moment(expected)
    elif isinstance(value, (int, float)):
        expected = float(expected)
    return {"=": value == expected, "!=": value != expected, ">=": value >= expected, "<=": value <= expected,
            ">": value > expected, "<": value < expected}[op]


class GcpLogging:
    def __init__(self) -> None:
        self.entries: list[dict] = []
        self.server = _Server(self)

    def add(self, at: dt.datetime, line: dict, *, service: str = "entmoot-api") -> None:
        """One Cloud Run log entry: the app's JSON line as jsonPayload, its level as the entry's severity."""
        self.entries.append({"logName": "projects/entmoot/logs/run.googleapis.com%2Fstdout",
                             "resource": {"type": "cloud_run_revision", "labels": {"service_name": service}},
                             "timestamp": at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                             "severity": line.get("level", "DEFAULT"), "jsonPayload": line,
                             "insertId": str(len(self.entries))})

    def credentials_file(self, directory: Path) -> Path:
        """A service-account key file whose token endpoint is this server (GOOGLE_APPLICATION_CREDENTIALS)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        path = directory / "service-account.json"
        path.write_text(json.dumps({"type": "service_account", "project_id": "entmoot", "private_key_id": "loopback",
                                    "private_key": key, "client_email": "ops@entmoot.iam.gserviceaccount.com",
                                    "client_id": "1", "token_uri": f"{self.server.url}/token"}))
        return path

    def get(self, handler: _Handler) -> None:
        handler._answer(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

    def post(self, handler: _Handler, body: bytes) -> None:
        path = urlparse(handler.path).path
        if path == "/token" and b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in body:
            handler._answer(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
            return
        if path != "/v2/entries:list":
            self.get(handler)
            return
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            handler._answer(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                            "status": "UNAUTHENTICATED"}})
            return
        request = json.loads(body)
        try:
            conditions = [c for c in request.get("filter", "").split(" AND ") if c.strip()]
            found = [e for e in self.entries if all(_gcp_matches(e, c) for c in conditions)]
        except ValueError as exc:
            handler._answer(400, {"error": {"code": 400, "message": str(exc), "status": "INVALID_ARGUMENT"}})
            return
        found.sort(key=lambda e: _moment(e["timestamp"]), reverse=request.get("orderBy", "").endswith("desc"))
        start, size = int(request.get("pageToken") or 0), int(request.get("pageSize") or 50)
        page = {"entries": found[start:start + size]}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        handler._answer(200, page)


# ----------------------------------------------------------------------------------------------- Azure
def loopback_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "loopback.pem", directory / "loopback.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


_KQL_STAGES = [
    (re.compile(r'where (\w+) == "([^"]*)"'), "column-equals"),
    (re.compile(r"extend (\w+) = parse_json\((\w+)\)"), "parse-json"),
    (re.compile(r'where tostring\((\w+)\.(\w+)\) == "([^"]*)"'), "field-equals"),
    (re.compile(r"where todouble\((\w+)\.(\w+)\) >= ([\d.]+)"), "field-at-least"),
    (re.compile(r"project ([\w, ]+)"), "project"),
    (re.compile(r"order by (\w+) desc"), "order"),
    (re.compile(r"take (\d+)"), "take"),
]


class AzureMonitor:
    def __init__(self, directory: Path) -> None:
        self.rows: dict[str, list[dict]] = {}
        self.ca_bundle, key = loopback_certificate(directory)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.ca_bundle, key)
        self.server = _Server(self, tls)
        self.identity = _Server(self)  # the App Service managed-identity endpoint is plain HTTP on the host
        self.identity_header = "loopback-identity-header"

    def add(self, table: str, at: dt.datetime, line: dict, *, service: str = "entmoot-api") -> None:
        self.rows.setdefault(table, []).append({"TimeGenerated": at.astimezone(dt.UTC), "ContainerAppName_s": service,
                                                "Log_s": json.dumps(line)})

    def environment(self) -> dict[str, str]:
        """What an App Service host has: its identity endpoint and header; and trust in this server's certificate."""
        return {"IDENTITY_ENDPOINT": f"{self.identity.url}/msi/token", "IDENTITY_HEADER": self.identity_header,
                "REQUESTS_CA_BUNDLE": str(self.ca_bundle)}

    def get(self, handler: _Handler) -> None:
        url = urlparse(handler.path)
        if url.path != "/msi/token" or handler.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            handler._answer(400, {"error": "invalid_request"})
            return
        expires = int(dt.datetime.now(dt.UTC).timestamp()) + 3600
        handler._answer(200, {"access_token": TOKEN, "expires_on": str(expires), "token_type": "Bearer",
                              "resource": parse_qs(url.query).get("resource", [""])[0]})

    def post(self, handler: _Handler, body: bytes) -> None:
        match = re.fullmatch(r"/v1/workspaces/([\w-]+)/query", urlparse(handler.path).path)
        if not match:
            handler._answer(404, {"error": {"code": "PathNotFoundError", "message": handler.path}})
            return
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            handler._answer(401, {"error": {"code": "InvalidAuthenticationTokenTenant", "message": "bad token"}})
            return
        request = json.loads(body)
        try:
            columns, rows = self._run(request["query"], request.get("timespan"))
        except ValueError as exc:
            handler._answer(400, {"error": {"code": "BadArgumentError", "message": str(exc)}})
            return
        handler._answer(200, {"tables": [{"name": "PrimaryResult", "columns": [
            {"name": c, "type": "datetime" if c == "TimeGenerated" else "string"} for c in columns],
            "rows": [[row[c].isoformat().replace("+00:00", "Z") if c == "TimeGenerated" else row[c] for c in columns] for row in rows]}]})

    def _run(self, query: str, timespan: str | None) -> tuple[list[str], list[dict]]:
        table, *stages = [part.strip() for part in query.split("|")]
        rows = [dict(r) for r in self.rows.get(table, [])]
        if timespan:
            start, end = (_moment(t) for t in timespan.split("/"))
            rows = [r for r in rows if start <= r["TimeGenerated"] <= end]
        columns = ["TimeGenerated", "ContainerAppName_s", "Log_s"]
        for stage in stages:
            kind, match = next(((k, p.fullmatch(stage)) for p, k in _KQL_STAGES if p.fullmatch(stage)), (None, None))
            if match is None:
                raise ValueError(f"unsupported KQL stage {stage!r}")
            if kind == "column-equals":
                rows = [r for r in rows if r.get(match[1]) == match[2]]
            elif kind == "parse-json":
                for r in rows:
                    r[match[1]] = json.loads(r[match[2]])
            elif kind == "field-equals":
                rows = [r for r in rows if str(r[match[1]].get(match[2])) == match[3]]
            elif kind == "field-at-least":
                rows = [r for r in rows if float(r[match[1]].get(match[2], 0)) >= float(match[3])]
            elif kind == "project":
                columns = [c.strip() for c in match[1].split(",")]
            elif kind == "order":
                rows.sort(key=lambda r, c=match[1]: r[c], reverse=True)
            else:
                rows = rows[:int(match[1])]
        return columns, rows

    def close(self) -> None:
        self.server.close()
        self.identity.close()
