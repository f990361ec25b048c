"""How many connections mailhook-ingest takes: [ingest] max_connections holds new ones
back (they wait in the kernel's backlog) until one closes, and running out of file
descriptors pauses accepting instead of spinning a core and flooding the log."""

from __future__ import annotations

import json
import os
import re
import socket
import time

import requests

import helpers


def _ingest(mailhook, tmp_path, name: str, argv_prefix: list[str] | None = None, **keys):
    port = helpers.free_port()
    sections = json.loads(json.dumps(mailhook.sections))
    # A raw topic of its own: nothing here reaches the session's workers.
    sections["ingest"].update({"listen": f"127.0.0.1:{port}", "threads": "1",
                               "raw_topic": f"{mailhook.topics['raw']}.{name}"},
                              **{k: str(v) for k, v in keys.items()})
    path = tmp_path / f"{name}.ini"
    helpers.write_ini(path, sections)
    argv = [*(argv_prefix or []), str(helpers.build_dir() / "mailhook-ingest"),
            "--config", str(path)]
    proc = helpers.Proc(name, argv, mailhook.env, mailhook.workdir / f"{name}.log").start()
    base = f"http://127.0.0.1:{port}"
    helpers.wait_for(lambda: helpers.http_get_ok(base + "/healthz"), 30,
                     what=f"{name} /healthz")
    return proc, port, base


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(5)
    return s


def _healthz_on(s: socket.socket) -> bytes:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return s.recv(100)


def _metric(base: str, name: str) -> float:
    text = requests.get(base + "/metrics", timeout=5).text
    m = re.search(rf"^{name} ([0-9.]+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


def test_max_connections_holds_new_connections_until_one_closes(mailhook, tmp_path):
    proc, port, base = _ingest(mailhook, tmp_path, "conncap", max_connections=4)
    idle = []
    try:
        # The probes above have closed: the only connection is the one asking.
        helpers.wait_for(lambda: _metric(base, "mailhook_ingest_connections") == 1, 10,
                         what="the probes' connections to close")
        idle = [_connect(port) for _ in range(3)]
        # The fourth asks for the metrics, so it counts itself.
        with requests.Session() as fourth:
            helpers.wait_for(lambda: re.search(r"^mailhook_ingest_connections 4$",
                                               fourth.get(base + "/metrics", timeout=5).text,
                                               re.M), 10, what="four connections counted")
            # A fifth is accepted by the kernel (backlog) but not served while at the cap.
            waiting = _connect(port)
            waiting.settimeout(1.5)
            waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            try:
                early = waiting.recv(100)
            except socket.timeout:
                early = b""
            assert early == b"", "a connection over the cap was served"
            # One idle connection closes: the waiting one is served.
            idle.pop().close()
            waiting.settimeout(5)
            assert waiting.recv(100).startswith(b"HTTP/1.1 200")
            waiting.close()
    finally:
        for s in idle:
            s.close()
        proc.stop()
    assert proc.returncode() == 0, proc.tail()


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_running_out_of_file_descriptors_pauses_accepting(mailhook, tmp_path):
    # 64 descriptors: the connections below exhaust them while Kafka's are open.
    proc, port, base = _ingest(mailhook, tmp_path, "emfile", argv_prefix=["prlimit", "--nofile=64"])
    conns = []
    try:
        for _ in range(100):
            try:
                conns.append(_connect(port))
            except OSError:
                break
        time.sleep(0.5)
        before = _cpu_seconds(proc.pid)
        time.sleep(3)
        spent = _cpu_seconds(proc.pid) - before
        # Retrying accept() at once would keep a core busy the whole time.
        assert spent < 1.0, f"ingest used {spent:.2f} s of CPU in 3 s while out of descriptors"
        log = proc.log.read_text()
        warnings = [ln for ln in log.splitlines() if "accept: Too many open files" in ln]
        assert 1 <= len(warnings) <= 2, f"{len(warnings)} accept warnings in 3.5 s"
        assert "not accepting for 200 ms" in warnings[0]
    finally:
        for s in conns:
            s.close()
    try:
        # Descriptors free again: new connections are served, and the pauses were counted.
        s = helpers.wait_for(lambda: _try_healthz(port), 10, what="a connection to be served")
        assert s.startswith(b"HTTP/1.1 200")
        assert _metric(base, "mailhook_ingest_accept_pauses_total") >= 1
    finally:
        proc.stop()
    assert proc.returncode() == 0, proc.tail()


def _try_healthz(port: int) -> bytes | None:
    try:
        s = _connect(port)
    except OSError:
        return None
    try:
        return _healthz_on(s) or None
    except OSError:
        return None
    finally:
        s.close()
