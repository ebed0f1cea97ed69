"""The sandbox's ports: chosen where no outgoing connection can take them, and never twice at once."""

from __future__ import annotations

import multiprocessing
import socket
import tempfile

from entmoot_ops.sandbox import processes
from entmoot_ops.sandbox.processes import ephemeral_ports, free_port

# The narrow ranges these tests choose from lie in the default ephemeral range, where the sandboxes of a concurrent
# test never choose: a port this file holds for a moment is never one of theirs.
TEST_BASE = 45000


def test_a_port_is_below_the_ephemeral_range_and_free(monkeypatch, tmp_path):
    """bind(0) hands out ephemeral ports, which an outgoing connection of any process may take before the server
    binds: a CI run's sandbox once failed to start so."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    low = ephemeral_ports()[0]
    for _ in range(50):
        port = free_port()
        assert processes.LOWEST_PORT <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def _choose(count: int, out: multiprocessing.Queue) -> None:
    out.put([free_port() for _ in range(count)])


def _narrow(monkeypatch, tmp_path) -> None:
    """The narrowest range free_port chooses from (1000 ports), and a book of this test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(processes, "LOWEST_PORT", TEST_BASE)
    monkeypatch.setattr(processes, "ephemeral_ports", lambda: (TEST_BASE + 1000, 60999))


def test_sandboxes_starting_at_once_never_choose_the_same_port(monkeypatch, tmp_path):
    _narrow(monkeypatch, tmp_path)  # 4 x 60 choices among 1000 ports: without the book, some would be the same
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    choosers = [context.Process(target=_choose, args=(60, out)) for _ in range(4)]
    for chooser in choosers:
        chooser.start()
    chosen = [port for _ in choosers for port in out.get(timeout=60)]
    for chooser in choosers:
        chooser.join(10)
    assert len(chosen) == len(set(chosen)) == 240


def test_a_port_already_listened_on_is_not_chosen(monkeypatch, tmp_path):
    _narrow(monkeypatch, tmp_path)
    listening = []
    try:
        for port in range(TEST_BASE, TEST_BASE + 300):  # 50 choices, each with a chance in 3 of one of these
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen()
            listening.append(sock)
        taken = {sock.getsockname()[1] for sock in listening}
        assert not taken & {free_port() for _ in range(50)}
    finally:
        for sock in listening:
            sock.close()


def test_with_no_room_below_the_ephemeral_range_the_kernel_chooses(monkeypatch):
    monkeypatch.setattr(processes, "ephemeral_ports", lambda: (1024, 65535))
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_range_with_nothing_free_leaves_the_choice_to_the_kernel(monkeypatch, tmp_path):
    _narrow(monkeypatch, tmp_path)
    monkeypatch.setattr(processes, "_bindable", lambda port: False)
    port = free_port()  # returns, rather than looping over a range where nothing is free
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
