"""How mailhook-ingest's answers reach the client on a plain HTTP connection. The 200 of
an acknowledged webhook is written the moment its delivery report arrives, not on the
loop's next turn; the connection must still behave as HTTP says: a keep-alive
connection carries request after request, requests sent back to back (pipelined) are
each answered in order, and `Connection: close` or HTTP/1.0 get their answer and then
the end of the connection."""

from __future__ import annotations

import json
import re
import socket

import requests

import helpers
from test_pipeline import uid, unique_bounce


def _request(mailhook, body: dict, version: str = "HTTP/1.1", close: bool = False) -> bytes:
    data = json.dumps(body).encode()
    headers = helpers.signature_headers(mailhook.sources["ivymail"], data)
    lines = [f"POST /v1/webhooks/ivymail {version}", "Host: mailhook",
             "Content-Type: application/json", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def _connect(mailhook) -> socket.socket:
    host, port = mailhook.base_url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=15)


def _read_replies(sock: socket.socket, n: int, exact: bool = True) -> list[tuple[int, dict, str]]:
    """n whole replies (status, headers, body) from sock, in order; exact: and nothing
    after them."""
    buf, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} of {n} replies: {buf!r}"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
        if "content-length" not in headers:  # HTTP/1.0: the body ends with the connection
            while chunk := sock.recv(65536):
                buf += chunk
            headers["closed"] = "yes"
        length = int(headers.get("content-length", len(buf)))
        while len(buf) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside a reply body"
            buf += chunk
        out.append((status, headers, buf[:length].decode()))
        buf = buf[length:]
    assert not exact or not buf, f"bytes after the last reply: {buf!r}"
    return out


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False


def _assert_accepted(reply: tuple[int, dict, str]) -> str:
    status, headers, body = reply
    assert status == 200, reply
    doc = json.loads(body)
    assert doc["status"] == "accepted"
    assert re.fullmatch(r"[0-9a-f]{32}", doc["request_id"])
    assert headers["x-request-id"] == doc["request_id"]
    assert headers["content-type"] == "application/json"
    return doc["request_id"]


def test_keep_alive_pipelined_and_closing_connections(mailhook):
    raw = mailhook.topics["raw"]
    before = helpers.end_offsets(raw, mailhook.brokers)
    rid = uid()
    n = 0

    def body(tag: str) -> dict:
        nonlocal n
        n += 1
        return unique_bounce(f"reply{n}.{rid}@example.com", f"reply-{rid}-{tag}-{n}")

    ids = []
    # One keep-alive connection, request after request.
    with _connect(mailhook) as sock:
        for i in range(5):
            sock.sendall(_request(mailhook, body("seq")))
            ids.append(_assert_accepted(_read_replies(sock, 1)[0]))
        # Three requests in one write: three answers, in order, on the same connection.
        sock.sendall(b"".join(_request(mailhook, body("pipe")) for _ in range(3)))
        ids += [_assert_accepted(r) for r in _read_replies(sock, 3)]
        sock.settimeout(0.5)
        assert not _closed(sock), "a keep-alive connection was closed"

    # Connection: close and HTTP/1.0: the answer, then the end of the connection.
    for kw in ({"close": True}, {"version": "HTTP/1.0"}):
        with _connect(mailhook) as sock:
            sock.sendall(_request(mailhook, body("close"), **kw))
            reply = _read_replies(sock, 1)[0]
            ids.append(_assert_accepted(reply))
            assert reply[1].get("closed") or _closed(sock), f"connection left open after {kw}"

    assert len(set(ids)) == len(ids) == 10
    # Every 200 is a record on the raw topic, keyed by its request id.
    records = helpers.consume(raw, from_offsets=before, timeout=30, brokers_=mailhook.brokers)
    assert set(ids) <= {r.key for r in records}


def _connections(mailhook) -> int:
    text = requests.get(mailhook.base_url + "/metrics", timeout=5).text
    return int(re.search(r"^mailhook_ingest_connections (\d+)$", text, re.M).group(1))


def test_clients_that_leave_or_flood_while_waiting(mailhook):
    """A connection is read while its webhook waits for Kafka: a client that closes it
    meanwhile, or sends far more than a request meanwhile, neither stops the ingest nor
    keeps the connection open."""
    rid = uid()
    baseline = _connections(mailhook)
    # Sent, then closed at once (or reset): many of these close during the wait.
    for i in range(100):
        sock = _connect(mailhook)
        sock.sendall(_request(mailhook, unique_bounce(f"gone{i}.{rid}@example.com",
                                                      f"gone-{rid}-{i}")))
        if i % 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    # A request followed by 1 MiB of bytes that are no request: the 200, then the end
    # of the connection (the bytes are answered as a bad request or not read at all).
    with _connect(mailhook) as sock:
        sock.sendall(_request(mailhook, unique_bounce(f"flood.{rid}@example.com",
                                                      f"flood-{rid}")))
        try:
            sock.sendall(b"x" * (1 << 20))
        except OSError:
            pass  # the ingest closed the connection first
        _assert_accepted(_read_replies(sock, 1, exact=False)[0])
    # Still serving, and every one of those connections closed.
    with _connect(mailhook) as sock:
        sock.sendall(_request(mailhook, unique_bounce(f"after.{rid}@example.com", f"after-{rid}")))
        _assert_accepted(_read_replies(sock, 1)[0])
    helpers.wait_for(lambda: _connections(mailhook) <= baseline + 1, 15,
                     what="the connections closed")
