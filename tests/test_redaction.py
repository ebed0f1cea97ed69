"""The redaction rules (entmoot_ops.redaction): each kind of secret or personal datum is replaced by a marker that
names it, whole or cut, in prose, JSON and SQL; readings, thresholds, check ids and the suite's own messages are not
touched; the switches and patterns of an environment; bad settings in one line."""

from __future__ import annotations

import json
import re

import pytest

from entmoot_ops import redaction
from entmoot_ops.config import RedactionSettings, load_environment
from entmoot_ops.errors import ConfigError
from entmoot_ops.redaction import Redactor, normalise_literals
from entmoot_ops.secrets import Masker

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.s3cr3tSIG"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
# kind: (text as an environment writes it, the secret in it, the marker that must stand in its place)
KINDS = {
    "dsn": ("connect to postgresql://app:Hunter2pw@db.internal:5432/entmoot failed", "Hunter2pw", "[redacted:password]"),
    "password=": ("host=db password=Pa55word-x dbname=entmoot", "Pa55word-x", "[redacted:password]"),
    "bearer": ("Authorization: Bearer abcDEF123456ghiJKL", "abcDEF123456ghiJKL", "[redacted:bearer]"),
    "basic": ("Authorization: Basic YWxpY2U6c2VjcmV0cGFzcw==", "YWxpY2U6c2VjcmV0cGFzcw==", "[redacted:basic]"),
    "short bearer": ("authorization=Bearer ab12cd", "ab12cd", "[redacted:bearer]"),
    "authorization": ('"Authorization": "k3y-v4lue"', "k3y-v4lue", "[redacted:authorization]"),
    "jwt": (f"session {JWT} expired", "eyJzdWIiOiJhbGljZSJ9", "[redacted:jwt]"),
    "aws key id": ("signed with AKIAZ7TESTKEY1234567 at 12:00", "AKIAZ7TESTKEY1234567", "[redacted:aws-access-key-id]"),
    "aws secret": ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE0", "wJalrXUtnFEMI", "[redacted:aws-secret-key]"),
    "token=": ("GET /callback?state=1&token=tok_9f8e7d6c5b4a HTTP/1.1", "tok_9f8e7d6c5b4a", "[redacted:token]"),
    "api_key=": ("upstream refused api_key=ak_live_1234abcd", "ak_live_1234abcd", "[redacted:api-key]"),
    "X-API-Key": ("headers: X-API-Key: xk-55aa66bb77cc", "xk-55aa66bb77cc", "[redacted:api-key]"),
    "private key": (f"loaded {PRIVATE_KEY} from disk", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "[redacted:private-key]"),
    "cookie": ("request headers Cookie: sid=c00k1e-s3ss10n; theme=dark", "c00k1e-s3ss10n", "[redacted:cookie]"),
    "e-mail": ("no quota left for alice@example.com", "alice@example.com", "[redacted:email]"),
    "vendor token": ("github said ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghij", "[redacted:token]"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_replaced_by_a_marker_that_names_it(kind):
    text, secret, marker = KINDS[kind]
    redacted = Redactor().text(text)
    assert secret not in redacted and marker in redacted, redacted


def test_what_follows_a_redacted_value_stays():
    redactor = Redactor()
    for text, _, _ in KINDS.values():
        assert redactor.text(text + " ; next words").endswith(" ; next words"), text
    assert redactor.text(KINDS["password="][0]) == "host=db password=[redacted:password] dbname=entmoot"
    assert redactor.text("x password='p w' y") == "x password='[redacted:password]' y"


@pytest.mark.parametrize("kind", ["dsn", "jwt", "private key"])
def test_a_secret_cut_short_is_still_redacted(kind):
    """Truncation is not redaction: what an earlier cut left of a secret is still recognised."""
    text, secret, marker = KINDS[kind]
    cut = text[:text.index(secret) + len(secret) - 2]
    redacted = Redactor().text(cut)
    assert secret[:-2] not in redacted and marker in redacted, redacted


def test_an_excerpt_is_redacted_before_it_is_cut():
    text = "upstream failed token=" + JWT + " postgresql://app:hunter2pw@db.internal:5432/entmoot"
    for limit in range(10, len(text)):
        assert not re.search(r"hunter|s3cr3t|eyJzdWIi", Redactor().excerpt(text, limit)), limit


def test_readings_ids_and_the_suites_own_words_are_left_alone():
    kept = ["api.error-rate[sandbox]: measured 4.20%, threshold < 1.00% over 15 min -> remediation api.scale-out",
            "api.auth.secret: environment variable ENTMOOT_API_TOKEN is not set",
            "redis://cache.internal:6379/0 and http://127.0.0.1:8080", "ssh://deploy@bastion.example.com",
            "version 1.4.2; 10.0.3.7; 192.168.1.20; 172.16.0.4; 127.0.0.1", "requirepass: set", "p95 812 ms over 3 periods",
            "Basic authentication failed; bearer Tokens expired; token refreshed successfully"]
    redactor = Redactor(public_ipv4=True)
    for text in kept:
        assert redactor.text(text) == text


def test_emails_are_kept_only_where_asked():
    text = "quota for alice@example.com"
    assert Redactor().text(text) == "quota for [redacted:email]"
    assert Redactor(keep_emails=True).text(text) == text


def test_public_ipv4_addresses_only_where_asked_and_private_ranges_always_kept():
    text = "from 203.0.113.77 via 10.1.2.3 and 100.64.0.9, then 8.8.8.8"
    assert Redactor().text(text) == text
    assert Redactor(public_ipv4=True).text(text) == "from [redacted:ipv4] via 10.1.2.3 and 100.64.0.9, then [redacted:ipv4]"


def test_an_environments_own_patterns_name_their_marker():
    settings = RedactionSettings(patterns={"customer-id": r"CUST-[0-9]{6}"})
    assert Redactor.merged([settings]).text("order of CUST-123456 failed") == "order of [redacted:customer-id] failed"


def test_a_run_over_several_environments_redacts_what_any_of_them_redacts():
    keeps = RedactionSettings(keep_emails=True)
    merged = Redactor.merged([keeps, RedactionSettings(public_ipv4=True, patterns={"ticket": "T-[0-9]+"})])
    assert merged.text("alice@example.com 203.0.113.7 T-42") == "[redacted:email] [redacted:ipv4] [redacted:ticket]"
    assert Redactor.merged([keeps, keeps]).text("alice@example.com") == "alice@example.com"


def test_structured_values_are_redacted_by_key_and_by_content():
    data = {"MasterUserPassword": "x1", "headers": {"Authorization": "Bearer ab1"}, "users": ["alice@example.com"],
            "checks": {"upstream": "error: postgresql://app:pw9@db/x"}, "calls": 3, "with_credential": 200}
    assert Redactor().data(data) == {
        "MasterUserPassword": "[redacted:password]", "headers": {"Authorization": "[redacted:authorization]"},
        "users": ["[redacted:email]"], "checks": {"upstream": "error: postgresql://app:[redacted:password]@db/x"},
        "calls": 3, "with_credential": 200}


def test_masked_json_stays_json_whatever_the_secret_holds():
    """A rule applied to serialised JSON would eat its quotes and commas; the masker masks the values, then serialises."""
    masker = Masker()
    masker.add('se"cr,et')
    text = masker.dumps({"message": 'password="p,w" and se"cr,et', "token": "abc"}, indent=2)
    assert json.loads(text) == {"message": 'password="[redacted:password]" and [redacted:secret]', "token": "[redacted:token]"}


@pytest.mark.parametrize(("statement", "shown"), [
    ("SELECT * FROM users WHERE email = 'alice@example.com' AND id = 42", "SELECT * FROM users WHERE email = $1 AND id = $2"),
    # pg_stat_statements before PostgreSQL 16 keeps a utility statement's text as it was sent.
    ("ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD $1"),
    ("UPDATE s SET v = $$tok_9f8e7d$$, w = E'it''s' WHERE id IN (1, 2.5)", "UPDATE s SET v = $1, w = $2 WHERE id IN ($3, $4)"),
    # Already normalised (pg_stat_statements): left as it is.
    ("SELECT * FROM t WHERE a = $1", "SELECT * FROM t WHERE a = $1"),
    # pg_stat_activity cut it inside a literal (track_activity_query_size): the rest is a placeholder.
    ("SELECT * FROM t WHERE a = $1 AND b = 'alice@exa", "SELECT * FROM t WHERE a = $1 AND b = $2"),
    # Not valid SQL, still lexed by PostgreSQL's own scanner.
    ("SELEC name FROM t WHERE k = 'secret-value' LIMIT 5", "SELEC name FROM t WHERE k = $1 LIMIT $2"),
])
def test_statements_show_placeholders_where_their_literals_were(statement, shown):
    assert normalise_literals(statement) == shown


def test_a_comment_in_a_statement_is_redacted_by_the_rules():
    shown = Redactor().statement("SELECT 1 /* user=alice@example.com token=abc123xyz */")
    assert "alice" not in shown and "abc123xyz" not in shown and shown.startswith("SELECT $1")


def test_bad_patterns_are_one_line_naming_the_key(environments):
    for written, said in ((r'patterns = { customer-id = "CUST-[0-9" }', "redaction.patterns: Value error, customer-id: not a regular expression"),
                          (r'patterns = { "Customer ID" = "C-[0-9]+" }', "a pattern's name is its marker")):
        directory = environments(replace={"[redaction]\n": f"[redaction]\n{written}\n"})
        with pytest.raises(ConfigError) as failure:
            load_environment("sandbox", directory)
        assert said in str(failure.value) and "\n" not in str(failure.value), failure.value


def test_the_run_adopts_its_environments_rules(environments):
    directory = environments(replace={"[redaction]\n": '[redaction]\npatterns = { ticket = "T-[0-9]+" }\n'})
    try:
        redaction.adopt([load_environment("sandbox", directory).redaction])
        assert Masker()("see T-991") == "see [redacted:ticket]"
    finally:
        redaction.adopt([])


def test_every_text_drawn_on_a_chart_is_masked(monkeypatch):
    """A chart's title, legend, annotations and tick labels can quote a path, a key or a message."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from entmoot_ops import charts

    drawn: list[str] = []
    save = Figure.savefig

    def savefig(figure: Figure, *args, **kwargs):
        drawn.extend(text.get_text() for text in figure.findobj(Text))
        drawn.extend(tick.get_text() for axis in figure.axes for tick in axis.get_yticklabels())
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    charts.timeline("experiment for alice@example.com", [(1.0, "injection", "token=tok_9f8e7d6c5b4a"), (2.0, "detected alice@example.com", "x")])
    charts.gameday("game day", [("exp password=Pa55word-x", 3.0, 4.0)])
    assert drawn and not [t for t in drawn if re.search("alice@|tok_9f8e|Pa55word", t)], drawn
    assert any("[redacted:" in t for t in drawn)
