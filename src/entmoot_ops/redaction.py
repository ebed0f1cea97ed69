"""Redaction of what the suite copies out of an environment: log lines, statements, keys, answers, events.

A report travels further than the systems it read: it is attached to a ticket, pasted into a post-incident review,
sent to Slack. So what a probe copies (an error message from the logs, a statement from ``pg_stat_activity``, a
Redis key, a /health body, a CloudTrail event) is redacted where it is copied, before anything cuts it short (a
password cut in half is half a password), and everything the suite writes passes the same rules again on its way
out (:data:`entmoot_ops.secrets.masker`). What was redacted says so, ``[redacted:jwt]``, so that a reader knows
something was there; readings, thresholds and check ids are not touched.

The rules are ours, not a scanner's: detect-secrets and its kin find secrets in source files line by line and
tell a reviewer where they are; here a secret must be replaced inside prose, JSON and SQL, cut or whole, and in
every process of a run (detect-secrets alone takes 0.2 s to import). Statements are normalised by PostgreSQL's own
parser (pglast, libpg_query): the placeholders are the ones ``pg_stat_statements`` shows for the same statement.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MARKER = "[redacted:{}]"

# Key names whose value is a credential, in key=value, "key": "value" (JSON) and header forms.
# A prefix is allowed (PGPASSWORD, db_password, aws_secret_access_key, MasterUserPassword).
_SECRET_KEYS = r"[\w-]*?(?:password|passwd|pwd|secret|token|api_?key|apikey|secret_?access_?key|private_?key|authorization|cookie)"
# A value stops where JSON, a query string, a header list or a sentence goes on; a marker is not redacted again.
_VALUE = r"(?!\[redacted:)[^\s\"'&,;\\<>]+"


def _kind_of_key(name: str) -> str:
    name = name.lower().replace("_", "-")
    if "pass" in name or name == "pwd":
        return "password"
    if "secret-access-key" in name or "secretaccesskey" in name:
        return "aws-secret-key"
    if "api" in name and "key" in name:
        return "api-key"
    if "private" in name:
        return "private-key"
    if "authorization" in name or "cookie" in name:
        return name.rsplit("-", 1)[-1]
    return "token" if "token" in name else "secret"


def _not_a_word(candidate: str) -> bool:
    """A credential after "Bearer" or "Basic" is not a word of prose ("basic authentication failed")."""
    return not (candidate.isalpha() and candidate[1:].islower())


@dataclass(frozen=True)
class Rule:
    kind: str  # the marker's name; "" when the kind depends on the match (see _kind)
    pattern: re.Pattern[str]
    # The named group "secret" is what is replaced; without it, the whole match. A match that fails ``plausible`` stays.
    plausible: Callable[[str], bool] | None = None


RULES: tuple[Rule, ...] = (
    # A private key block, whole, or up to where the text was cut.
    Rule("private-key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)),
    # A JWT's header and payload are base64url JSON objects (eyJ...); a cut token is still a token.
    Rule("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?")),
    # A URL's password (postgresql://user:PASSWORD@host), and one cut before its @ where the text ends.
    Rule("password", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@\"'\\]*:(?P<secret>(?!\[redacted:)[^\s@\"'\\/]+)(?=@)", re.I)),
    Rule("password", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@\"'\\]*:(?P<secret>(?!\d+\Z)[^\s@\"'\\/]+)\Z", re.I)),
    # Authorization header values: the scheme is kept, the credential goes.
    Rule("", re.compile(r"\b(?P<scheme>Bearer|Basic|Token|Digest)\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})", re.I), _not_a_word),
    Rule("", re.compile(r"\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?P<scheme>Bearer|Basic|Token|Digest)\s+)?(?P<secret>"
                        + _VALUE + ")", re.I)),
    # AWS access key ids (long-term AKIA, temporary ASIA, ...).
    Rule("aws-access-key-id", re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")),
    # Well-known token formats, by their documented prefixes.
    Rule("token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9_]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|"
                             r"xox[abposr]-[A-Za-z0-9-]{10,}|[rs]k_live_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{20,}|"
                             r"npm_[A-Za-z0-9]{30,}|pypi-[A-Za-z0-9_-]{50,}|AIza[A-Za-z0-9_-]{35}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})")),
    # key=value, "key": "value" and header forms of a credential. An unquoted "key: value" is prose ("secret: env:X is
    # not set") and is left alone.
    Rule("", re.compile(r"(?<![\w-])(?P<key>" + _SECRET_KEYS + r")\s*=\s*(?P<quote>[\"'])?(?P<secret>(?!\[redacted:)"
                        r"(?(quote)[^\"'\\]+|[^\s\"'&,;\\<>]+))", re.I)),
    Rule("", re.compile(r"[\"'](?P<key>" + _SECRET_KEYS + r")[\"']\s*:\s*[\"'](?P<secret>(?!\[redacted:)[^\"'\\]+)", re.I)),
    Rule("", re.compile(r"(?<![\w-])(?P<key>x-api-key|api-key|x-auth-token|cookie|set-cookie)\s*:\s*(?P<secret>" + _VALUE + ")", re.I)),
)
# Not the user of a URL (ssh://deploy@bastion.example.com), which names an account, not a person.
EMAIL = re.compile(r"(?<!://)(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
# "Private" as an on-call means it: RFC 1918, loopback, link-local, carrier-grade NAT, "this network". Documentation
# ranges (203.0.113.0/24) are redacted like any public address: they stand for one in examples and tests.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
                                                              "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8"))


def _kind(rule: Rule, match: re.Match[str]) -> str:
    if rule.kind:
        return rule.kind
    found = match.groupdict()
    if found.get("scheme"):
        return "basic" if found["scheme"].lower() == "basic" else "bearer"
    if found.get("key"):
        return _kind_of_key(found["key"])
    return "authorization"


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # 999.1.2.3 is a version, not an address
        return False
    return not any(ip in network for network in PRIVATE_NETWORKS)


MEMO_TEXTS, MEMO_LENGTH = 20_000, 4_000  # a long text (a log excerpt) is seldom seen twice


@dataclass(frozen=True)
class Redactor:
    """The rules a run applies: the built-in ones, e-mail addresses unless kept, public IPv4 addresses where asked,
    and each environment's own patterns (name -> regular expression)."""

    keep_emails: bool = False
    public_ipv4: bool = False
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = field(default=())
    # A run redacts the same texts again and again (check ids, titles, labels in every result): each once.
    _redacted: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def merged(cls, settings: Iterable[Any]) -> Redactor:
        """One redactor for a run over several environments: its outputs are shared, so whatever one of them
        redacts is redacted (an e-mail address is kept only where every environment keeps them)."""
        settings = list(settings)
        if not settings:
            return cls()
        patterns = {name: re.compile(regex) for s in settings for name, regex in s.patterns.items()}
        return cls(keep_emails=all(s.keep_emails for s in settings), public_ipv4=any(s.public_ipv4 for s in settings),
                   patterns=tuple(patterns.items()))

    def text(self, value: str) -> str:
        if not value:
            return value
        known = self._redacted.get(value)
        if known is None:
            known = self._apply(value)
            if len(value) <= MEMO_LENGTH:
                if len(self._redacted) >= MEMO_TEXTS:
                    self._redacted.clear()
                self._redacted[value] = known
        return known

    def _apply(self, value: str) -> str:
        for rule in RULES:
            value = rule.pattern.sub(lambda m, r=rule: _replace(m, _kind(r, m), r.plausible), value)
        for name, pattern in self.patterns:
            value = pattern.sub(lambda m, n=name: _replace(m, n), value)
        if not self.keep_emails:
            value = EMAIL.sub(MARKER.format("email"), value)
        if self.public_ipv4:
            value = IPV4.sub(lambda m: MARKER.format("ipv4") if _public(m.group()) else m.group(), value)
        return value

    def data(self, value: Any) -> Any:
        return walk(value, self.text)

    def statement(self, sql: str) -> str:
        """A statement as pg_stat_statements shows it: its literals replaced by $1, $2, ... (PostgreSQL only does
        this for the statements it tracks, and before 16 not for utility statements: ALTER ROLE ... PASSWORD)."""
        return self.text(normalise_literals(sql))

    def excerpt(self, value: str, limit: int) -> str:
        """Redacted first, then cut: a cut would leave half a secret that no rule recognises."""
        value = self.text(value)
        return value if len(value) <= limit else value[:limit - 1] + "…"


_SECRET_KEY_NAME = re.compile(_SECRET_KEYS, re.I)


def walk(value: Any, text: Callable[[str], str]) -> Any:
    """A JSON-like value with ``text`` applied to every string in it, and the value of a key that names a credential
    (``"MasterUserPassword"``) replaced whatever it is."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {key: (MARKER.format(_kind_of_key(key)) if _names_secret(key) and item not in (None, "", {}, [])
                      else walk(item, text)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(walk(item, text) for item in value)
    return value


@functools.lru_cache(maxsize=4096)  # a run's JSON has few distinct keys, each in many objects
def _names_secret(key: Any) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY_NAME.fullmatch(key))


def _replace(match: re.Match[str], kind: str, plausible: Callable[[str], bool] | None = None) -> str:
    marker = MARKER.format(kind)
    if "secret" not in match.re.groupindex or match.group("secret") is None:
        return marker
    if plausible is not None and not plausible(match.group("secret")):
        return match.group()
    start, end = match.span("secret")
    whole = match.group()
    return whole[:start - match.start()] + marker + whole[end - match.start():]


def normalise_literals(sql: str) -> str:
    """Constants replaced by $n placeholders with PostgreSQL's own lexer. A statement that does not parse is still
    lexed; one cut inside a literal (pg_stat_activity keeps track_activity_query_size bytes) loses the rest of it."""
    from pglast import parser  # 30 ms to import: only where statements are read

    try:
        return parser.normalize(sql)
    except parser.ParseError:
        pass
    cut = len(sql)
    while True:
        try:
            tokens = [t for t in parser.scan(sql[:cut]) if t.name in ("SCONST", "ICONST", "FCONST", "BCONST", "XCONST", "USCONST")]
            break
        except parser.ParseError as exc:  # an unterminated literal or comment: lexed up to where it starts
            location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
            cut = min(cut - 1, max(0, location))
    placeholders = max((int(n) for n in re.findall(r"\$(\d+)", sql[:cut])), default=0)
    pieces, position = [], 0
    for number, token in enumerate(tokens, start=placeholders + 1):
        pieces += [sql[position:token.start], f"${number}"]
        position = token.end + 1
    pieces.append(sql[position:cut])
    if cut < len(sql):
        pieces.append(f"${placeholders + len(tokens) + 1}")
    return "".join(pieces)


# The run's rules, set from its environments (adopt) in every process of the run: a probe's copy and the way out
# apply the same ones.
_current = Redactor()


def adopt(settings: Iterable[Any]) -> None:
    global _current
    _current = Redactor.merged(settings)


def redact(value: str) -> str:
    return _current.text(value)


def redact_statement(sql: str) -> str:
    return _current.statement(sql)


def excerpt(value: str, limit: int) -> str:
    return _current.excerpt(value, limit)
