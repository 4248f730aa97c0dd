"""The test HTTP server itself: a client hanging up mid-answer is normal there, never a traceback."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from httpserver import JPEG, HttpServer, Reply

WAIT = 10.0  # upper bound for the server to finish the broken answer; never a speed assertion


def _answering(before: set[int]) -> bool:
    """A request thread started by this test is still running."""
    return any(
        "process_request_thread" in t.name and t.ident not in before for t in threading.enumerate()
    )


@pytest.mark.parametrize("abort", [False, True], ids=["close", "reset"])
def test_a_client_hanging_up_mid_body_prints_nothing(
    capfd: pytest.CaptureFixture[str], abort: bool
) -> None:
    before = {t.ident for t in threading.enumerate() if t.ident is not None}
    with HttpServer() as server:
        server.route("/slow.jpg", Reply(200, body=JPEG * 20, drip=0.001))
        client = socket.create_connection((server.host, server.port), timeout=WAIT)
        client.sendall(b"GET /slow.jpg HTTP/1.1\r\nHost: test\r\n\r\n")
        assert client.recv(64).startswith(b"HTTP/1.1 200")
        if abort:  # the server's next write meets a reset rather than a closed pipe
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        deadline = time.monotonic() + WAIT
        while _answering(before) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _answering(before), "the server kept answering a client that hung up"
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
