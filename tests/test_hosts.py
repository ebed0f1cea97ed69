"""Host and TLS checks: through the sandbox's real SSH host (Debian's OpenSSH) and its HTTPS listener, healthy and
under each fault; commands over SSH only read; an SSH host that is down, frozen or misconfigured is one line."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
import testinfra

from conftest import settle
from entmoot_ops.probes import hosts

HOST_CHECKS = ("hosts.reach", "hosts.clock", "hosts.tools", "hosts.disk", "hosts.services", "hosts.postgres-config",
               "hosts.redis-config", "tls.api-certificate", "tls.acm-certificate")


def test_every_host_check_passes_on_the_sandbox_through_its_ssh_host(sandbox, run_checks):
    audit = Path(sandbox.state["root"]) / "ssh" / "audit.log"
    before = audit.read_text().count("\n") if audit.exists() else 0
    run = run_checks("-m", "hosts")
    assert run.returncode == 0, run.output[-3000:]
    assert {r.check_id: r.outcome for r in run.results} == dict.fromkeys(HOST_CHECKS, "pass"), run.output[-3000:]
    # The on-call host and the self-managed ones are the SSH host: their commands went through sshd.
    assert audit.read_text().count("\n") - before >= 6
    for check_id in HOST_CHECKS[:7]:
        assert "hosts" in run.result(check_id).touched, check_id


@pytest.mark.parametrize("fault,params,check_id,measured,threshold", [
    ("certificate_expiring", {"days": 3}, "tls.api-certificate", "3 days", ">= 14 days"),
    ("certificate_expiring", {"days": 3}, "tls.acm-certificate", "3 days", ">= 14 days"),
    ("certificate_wrong_host", {}, "tls.api-certificate", "Hostname mismatch, certificate is not valid for 'localhost'.", "== verified"),
    ("clock_skew", {"seconds": 5}, "hosts.clock", None, "<= 1 s"),
    ("tool_missing", {"tool": "jq"}, "hosts.tools", "1", "== 0"),
    ("redis_requirepass_missing", {}, "hosts.redis-config", "not set", "== set"),
], ids=["expiring-served", "expiring-acm", "wrong-host", "clock-skew", "tool-missing", "redis-requirepass"])
def test_each_host_fault_turns_its_check_red(sandbox, run_checks, fault, params, check_id, measured, threshold):
    with sandbox.fault(fault, **params):
        run = run_checks("-m", "hosts")
    result = run.result(check_id)
    assert (result.outcome, result.junit) == ("fail", "failure"), run.output[-3000:]
    if measured is not None:
        assert measured in result.measured.split("; "), result.measured
    else:  # 5 s of skew, known within a second: "at least" 4 s or more
        assert float(result.measured.split()[0]) >= 4, result.measured
    assert threshold in result.threshold.split("; ") and result.remediation, result
    # Nothing else turned red: each fault is its check's alone.
    assert {r.check_id for r in run.results if r.outcome != "pass"} <= {"tls.api-certificate", "tls.acm-certificate"} | {check_id}


def test_a_missing_tool_is_named(sandbox, run_checks):
    with sandbox.fault("tool_missing", tool="redis-cli"):
        run = run_checks("-m", "hosts", "-k", "tools")
    assert "redis-cli: not on the PATH" in run.result("hosts.tools").message, run.output[-2000:]


def test_reach_names_the_endpoint_it_cannot_connect_to(sandbox, run_checks):
    with sandbox.fault("component_killed", component="redis"):
        run = run_checks("-m", "hosts", "-k", "reach")
    result = run.result("hosts.reach")
    port = sandbox.state["ports"]["redis"]
    assert result.outcome == "fail" and f"Redis 127.0.0.1:{port}: resolves in" in result.message, run.output[-2000:]
    assert "no TCP connection" in result.message and result.measured == "1"


@pytest.mark.parametrize("clock", ["EPOCHREALTIME", "date"])
def test_reach_times_each_step_with_the_hosts_clock_with_or_without_bash_5(clock, sandbox):
    """bash 5 gives the clock in EPOCHREALTIME; an older bash (or one where it is unset) forks date: same figures."""
    unset = "unset EPOCHREALTIME; " if clock == "date" else ""
    ports = sandbox.state["ports"]
    started = time.monotonic()
    said = subprocess.run(["bash", "-c", unset + hosts._REACH, "_", "1", "127.0.0.1", str(ports["redis"]), "nowhere.invalid", "1"],
                          capture_output=True, text=True, timeout=30).stdout.splitlines()
    elapsed_us = (time.monotonic() - started) * 1_000_000
    connected, unresolved = ([int(v) for v in line.split()] for line in said)
    assert connected[:2] == [0, 0] and unresolved[:2] == [2, 9], said
    # Microseconds: each step took some time, and no more than the whole script did (nanoseconds would be 1000x more).
    assert 0 < connected[3] <= elapsed_us and 0 <= unresolved[2] <= elapsed_us, (said, elapsed_us)


# What a host check may run: programs that read ("$t" is each tool of hosts.tools, asked for its --version). A probe
# that writes (rm, tee, sed -i, systemctl, a redirection into a file) fails the test below.
READERS = {"timeout", "sh", "bash", "getent", "date", "command", "head", "stat", "cat", "ls", "ps", "ss", "echo", "true",
           "shift", "continue", "[", ":", '"$t"', "$t", "uname", "realpath", "test"}
SHELL_WORDS = {"while", "do", "done", "for", "in", "if", "then", "fi", "else", "{", "}", "!"}
HARMLESS_REDIRECTIONS = re.compile(r"[12]?>&[12]|[12]?>\s*/dev/null|<\s*/dev/tcp/\S+")


def _programs(command: str) -> set[str]:
    """The programs a shell command line runs, the scripts of ``sh -c``/``bash -c`` and ``$(...)`` included."""
    line = re.sub(r"\$\(\(.*?\)\)", "0", command)  # arithmetic, not a command
    line = HARMLESS_REDIRECTIONS.sub(" ", line).replace("$(", " ; ").replace(")", " ; ")
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    words = list(lexer)
    found: set[str] = set()
    defined: set[str] = set()  # the script's own functions: what their bodies run is read like the rest
    expecting, program, listing = True, "", False
    for index, word in enumerate(words):
        if set(word) <= set(";&|"):
            expecting, listing = True, False
        elif listing:
            continue  # for NAME in WORDS: a variable and its values
        elif expecting and word == "for":
            listing = True
        elif expecting and re.fullmatch(r"[A-Za-z_]\w*\(", word):  # NAME() { ...; }, its ")" made a separator above
            defined.add(word[:-1])
        elif expecting and (word in SHELL_WORDS or re.fullmatch(r"[A-Za-z_]\w*=.*|-.*|[\d.]+[smh]?", word)):
            continue  # a keyword, an assignment, or timeout's duration and options: the program comes after
        elif expecting:
            found.add(word)
            expecting, program = word == "timeout", word
        elif program in ("sh", "bash") and index > 0 and words[index - 1] == "-c":
            found |= _programs(word)
    return found - defined


def _writes_a_file(command: str) -> bool:
    return ">" in HARMLESS_REDIRECTIONS.sub(" ", re.sub(r"\$\(\(.*?\)\)", "0", command))


def test_host_checks_run_only_commands_that_read_over_ssh(sandbox, run_checks):
    audit = Path(sandbox.state["root"]) / "ssh" / "audit.log"
    start = len(audit.read_text().splitlines()) if audit.exists() else 0
    run = run_checks("-m", "hosts", "--evidence", "all")
    assert run.returncode == 0, run.output[-2000:]
    commands = audit.read_text().splitlines()[start:]
    assert commands, "no command reached the SSH host"
    for command in commands:
        assert _programs(command) <= READERS, (command, _programs(command) - READERS)
        assert not _writes_a_file(command), command  # output comes back to the suite, or goes to /dev/null


def test_the_command_audit_catches_a_writer():
    """The rule above is no formality: commands that change a host fail it."""
    for writer in ("rm -f /tmp/x", "timeout 10 sh -c 'sed -i s/a/b/ /etc/redis.conf'", "sh -c 'echo x | tee /tmp/y'",
                   "timeout 10 sh -c 'x=$(systemctl restart redis)'"):
        assert not _programs(writer) <= READERS, writer
    assert _writes_a_file("timeout 10 sh -c 'date > /etc/motd'") and not _writes_a_file("getent ahosts x >/dev/null 2>&1")


def test_a_frozen_ssh_host_is_one_line_and_one_timeout(sandbox, run_checks):
    """sshd stopped (SIGSTOP): a new connection hangs in its banner exchange. The first host check waits
    ConnectTimeout (timeouts.connect_seconds) and opens the host's circuit; the others are refused at once."""
    pid = sandbox.state["pids"]["ssh"]
    os.kill(pid, signal.SIGSTOP)
    try:
        run = run_checks("-m", "hosts", "-k", "not tls")
    finally:
        os.kill(pid, signal.SIGCONT)
    errors = [r for r in run.results if r.outcome == "error"]
    assert {r.check_id for r in errors} == set(HOST_CHECKS[:7]), run.output[-3000:]
    assert all(r.message.startswith("host ssh://entmoot-sandbox-host unreachable") and "\n" not in r.message for r in errors)
    assert "Traceback" not in run.output
    assert sum(r.seconds for r in errors) < 10, [(r.check_id, r.seconds) for r in errors]


def test_an_ssh_host_that_refuses_is_one_line(run_checks, environments, tmp_path):
    """A bastion that is not there (nothing listens) and one with a key it does not accept, as a user would meet them."""
    closed = tmp_path / "closed_ssh_config"
    closed.write_text("Host entmoot-sandbox-host\n  HostName 127.0.0.1\n  Port 9\n  BatchMode yes\n")
    directory = environments(replace={'ssh_config = "env:ENTMOOT_SANDBOX_SSH_CONFIG"': f'ssh_config = "{closed}"'})
    run = run_checks("--environments-dir", str(directory), "-m", "hosts", "-k", "reach or tools")
    for check_id in ("hosts.reach", "hosts.tools"):
        result = run.result(check_id)
        assert result.outcome == "error" and "Connection refused" in result.message, run.output[-2000:]
        assert "hosts.ssh_config" in result.fix


def test_a_placeholder_bastion_is_never_asked(run_checks, environments):
    directory = environments(replace={'oncall = ["ssh://entmoot-sandbox-host"]': 'oncall = ["ssh://oncall@bastion.yourdomain.com"]'})
    run = run_checks("--environments-dir", str(directory), "-m", "hosts", "-k", "reach or clock")
    assert "bastion.yourdomain.com is a placeholder host" in run.output, run.output[-2000:]
    assert {r.outcome for r in run.results} == {"error"} and run.returncode != 0


def test_a_host_url_that_testinfra_cannot_use_is_refused_in_one_line(run_checks, environments):
    directory = environments(replace={'oncall = ["ssh://entmoot-sandbox-host"]': 'oncall = ["bastion.internal"]'})
    run = run_checks("--environments-dir", str(directory), "-m", "hosts")
    assert run.returncode != 0 and "not a testinfra host URL" in run.output and "Traceback" not in run.output


def test_testinfras_own_hosts_option_replaces_the_oncall_list(run_checks):
    run = run_checks("-m", "hosts", "-k", "disk", "--hosts", "local://")
    assert run.outcome("hosts.disk") == "pass", run.output[-2000:]
    assert "disk use of / on local " in run.output


def test_a_plain_http_endpoint_is_no_certificate(run_checks, environments, sandbox):
    """[tls] endpoints naming a port that speaks HTTP, not TLS: one line, an error (nothing measured)."""
    port = sandbox.state["ports"]["api"]
    directory = environments(replace={'endpoints = ["env:ENTMOOT_SANDBOX_HTTPS_URL"]': f'endpoints = ["https://localhost:{port}"]'})
    run = run_checks("--environments-dir", str(directory), "-m", "hosts", "-k", "api_certificate")
    result = run.result("tls.api-certificate")
    assert result.outcome == "error" and f"TLS localhost:{port}" in result.message, run.output[-2000:]


def test_the_date_header_clock_narrows_to_a_tenth_of_a_second(sandbox):
    """One Date header bounds a clock within its second; each further sample, sent when the estimate says the
    second turns, halves that. Against a real 0.7 s skew, five samples find it within a tenth of a second."""
    url = sandbox.env["ENTMOOT_SANDBOX_API_URL"] + "/health"
    with sandbox.fault("clock_skew", seconds=0.7), requests.Session() as session:
        one = hosts.http_date_clock(session, url, timeout=(2, 5))
        five = hosts.http_date_clock(session, url, timeout=(2, 5), samples=5)
    assert one.low <= 0.7 <= one.high and one.high - one.low <= 1.1, one
    assert five.low <= 0.71 and five.high >= 0.69 and five.high - five.low <= 0.2, five
    assert five.reading(1.0)[1] == "at most" and five.reading(0.5)[1] == "at least"


def test_the_date_header_clock_samples_only_until_the_verdict_is_decided(sandbox):
    """A second sample is taken only when the first cannot decide, and sampling stops once one can: each further
    sample waits for the server's second to turn."""
    url = sandbox.env["ENTMOOT_SANDBOX_API_URL"] + "/health"
    sent: list[float] = []
    with requests.Session() as session:
        session.hooks["response"].append(lambda response, *args, **kwargs: sent.append(time.monotonic()))
        far = hosts.http_date_clock(session, url, timeout=(2, 5), samples=5, until=lambda offset: offset.decided(0.3))
        asked_far = len(sent)
        near = hosts.http_date_clock(session, url, timeout=(2, 5), samples=5, until=lambda offset: offset.decided(5.0))
    assert asked_far > 1 and far.decided(0.3) or asked_far == 5, (asked_far, far)
    assert len(sent) - asked_far == 1 and near.decided(5.0), near


def test_configuration_files_are_read_as_their_servers_read_them(tmp_path):
    """Through a real testinfra host: includes, the later line winning, ALTER SYSTEM's file, netmask-style
    pg_hba lines; Redis's default protected-mode."""
    host = testinfra.get_host("local://")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "postgresql.conf").write_text("ssl = off\ninclude_dir 'conf.d'\nport = 5433  # comment\n")
    (tmp_path / "conf.d" / "10-tls.conf").write_text("ssl = on\n")
    (tmp_path / "postgresql.auto.conf").write_text("work_mem = '64MB'\n")
    settings = hosts.postgres_settings(host, str(tmp_path / "postgresql.conf"), None)
    assert (settings["ssl"], settings["port"], settings["work_mem"]) == ("on", "5433", "64MB")
    (tmp_path / "pg_hba.conf").write_text("local all all trust\nhost all all 10.0.0.0 255.0.0.0 trust\n"
                                          "hostssl all all 0.0.0.0/0 scram-sha-256\n# host all all ::1/128 trust\n")
    lines = hosts.hba_lines(host, str(tmp_path / "pg_hba.conf"))
    assert [(line.kind, line.method) for line in lines] == [("local", "trust"), ("host", "trust"), ("hostssl", "scram-sha-256")]
    (tmp_path / "redis.conf").write_text("requirepass s3cret\ninclude extra.conf\n")
    (tmp_path / "extra.conf").write_text("requirepass \"\"\n")
    assert hosts.redis_settings(host, str(tmp_path / "redis.conf")) == {"requirepass": ""}  # the included file's, later


def test_an_include_if_exists_file_is_read_once_and_a_missing_one_adds_nothing(tmp_path):
    host = testinfra.get_host("local://")
    (tmp_path / "postgresql.conf").write_text("include_if_exists 'missing.conf'\ninclude_if_exists 'tls.conf'\nport = 5433\n")
    (tmp_path / "tls.conf").write_text("ssl = on\n")
    commands: list[str] = []
    run = host.run
    host.run = lambda command, *args, **kwargs: commands.append(host.backend.get_command(command, *args)) or run(command, *args, **kwargs)
    settings = hosts.postgres_settings(host, str(tmp_path / "postgresql.conf"), None)
    assert (settings["ssl"], settings["port"]) == ("on", "5433") and "missing.conf" not in str(settings)
    assert sum("tls.conf" in command for command in commands) == 1, commands


def test_the_api_certificate_check_reads_a_renewed_certificate_at_once(sandbox, run_checks):
    """The listener serves what was imported last (the fault's undo re-issues a 90-day certificate)."""
    with sandbox.fault("certificate_expiring", days=3):
        pass
    settle(sandbox)
    run = run_checks("-m", "hosts", "-k", "tls")
    assert run.outcome("tls.api-certificate") == "pass" and run.outcome("tls.acm-certificate") == "pass", run.output[-2000:]
    assert float(run.result("tls.api-certificate").measured.split("; ")[1].split()[0]) > 80


def test_environments_that_reach_a_host_alike_share_one_ssh_connection_which_ends_with_the_run(sandbox, run_checks, environments):
    """Three environments, one SSH handshake: an environment's end does not close the connection the next one uses."""
    directory = environments("first")
    for name in ("second", "third"):
        environments(name)
        shutil.copy(directory.parent / f"environments-{name}" / f"{name}.toml", directory)
    log = Path(sandbox.state["root"]) / "sshd.log"
    accepted = log.read_text().count("Accepted publickey")
    run = run_checks("-m", "hosts", "-k", "reach", "--environments-dir", str(directory), "--env", "first", "--env", "second",
                     "--env", "third")
    assert [r.outcome for r in run.results] == ["pass"] * 3, run.output[-2000:]
    assert log.read_text().count("Accepted publickey") - accepted == 1
    time.sleep(0.5)
    masters = [p for p in Path("/proc").iterdir() if p.name.isdigit() and b"ControlPersist" in _cmdline(p)
               and sandbox.state["env"]["ENTMOOT_SANDBOX_SSH_CONFIG"].encode() in _cmdline(p)]
    assert masters == []


def _cmdline(process: Path) -> bytes:
    try:
        return (process / "cmdline").read_bytes()
    except OSError:
        return b""


def test_a_right_clock_reads_well_within_the_limit(sandbox, run_checks):
    """One Date header bounds a right clock only within its second: it read up to 0.94 s against the 1 s limit on
    loopback, one slow round trip from failing. (A skewed clock still fails: the clock_skew case above.)"""
    for _ in range(2):
        run = run_checks("-m", "hosts", "--check", "hosts.clock")
        [reading] = next(c for c in json.loads((run.reports / "summary.json").read_text())["checks"] if c["id"] == "hosts.clock")["values"]
        assert run.outcome("hosts.clock") == "pass" and reading["value"] <= reading["limit"] / 2, reading
