"""Helpers for the runtime tests: the host-board firmware as a subprocess
(`tools/p1tool.py run`), a controllable loopback meter, HTTP/SSE clients."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Firmware:
    """`p1tool.py run` on free loopback ports with its own config file."""

    def __init__(self, tmp: Path, *args: str, config: str | None = None, raw_port=None):
        self.port = free_port()
        self.raw_port = raw_port or free_port()
        self.config = tmp / "config.json"
        if config is not None:
            self.config.write_text(config)
        cmd = [
            PY, str(REPO / "tools" / "p1tool.py"), "run",
            "--port", str(self.port), "--raw-port", str(self.raw_port),
            "--config", str(self.config), "--quiet", *args,
        ]  # fmt: skip
        self.err_path = tmp / "firmware.stderr"
        self._err = open(self.err_path, "wb")
        self._out = open(tmp / "firmware.stdout", "w")  # (all of it, for a run gone wrong: --basetemp)
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err)
        self.lines: list[str] = []
        self._up = threading.Event()  # its "http://" line came (or its output ended)
        threading.Thread(target=self._drain, daemon=True).start()
        # (a reader thread, not readline() here: a firmware that prints nothing, hung
        # before it serves, must fail the test after 20 s, not block it)
        self._up.wait(20)
        served = [ln for ln in self.lines if ln.startswith("http://")]
        if served:
            assert served[0].strip() == f"http://127.0.0.1:{self.port}/"
            return
        self.stop()
        raise AssertionError("firmware did not start:\n" + "".join(self.lines)[-3000:] + self.stderr())

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            self._out.write(line)
            if line.startswith("http://"):
                self._up.set()
        self._out.close()
        self._up.set()

    def stderr(self) -> str:
        if not self._err.closed:
            self._err.flush()
        return self.err_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        return self.proc.returncode

    def stop_ok(self) -> None:
        """stop(), asserting a clean exit (0), with the firmware's last output if not."""
        rc = self.stop()
        assert rc == 0, f"firmware exit {rc}\n" + "".join(self.lines[-40:]) + self.stderr()[-3000:]

    # --- HTTP ------------------------------------------------------------------
    def get(self, path: str, method: str = "GET", body=None, headers=None):
        """(status, headers dict lower-case, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def json(self, path: str):
        status, _, body = self.get(path)
        return status, exact_json(body)

    def status(self) -> dict:
        st, _, body = self.get("/api/v1/status")
        assert st == 200
        return json.loads(body)

    def wait(self, pred, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}\n" + "".join(self.lines[-40:]) + self.stderr())


def exact_json(body: bytes | str):
    """JSON with non-integer numbers kept as their text (no float ever)."""
    return json.loads(body, parse_float=str)


def raw_request(port: int, data: bytes, timeout=5.0) -> bytes:
    """Send bytes, read the whole answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out


class MeterServer:
    """A loopback TCP server the firmware reads as tcp://127.0.0.1:PORT; the
    test decides when each telegram is sent."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.source = f"tcp://127.0.0.1:{self.port}"
        self.conn = None

    def accept(self, timeout=10.0):
        self.sock.settimeout(timeout)
        self.conn, _ = self.sock.accept()

    def send(self, data: bytes):
        assert self.conn is not None
        self.conn.sendall(data)

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.sock.close()


class SseClient:
    """Reads /api/v1/events in a thread; `events` is a list of (event, id, data)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        self.events: list[tuple[str, str, str]] = []
        self.head = b""
        self.closed = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if not self.head:
                    i = buf.find(b"\r\n\r\n")
                    if i < 0:
                        continue
                    self.head, buf = buf[:i], buf[i + 4 :]
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    ev = {"event": "", "id": "", "data": ""}
                    for line in block.decode().split("\n"):
                        k, _, v = line.partition(": ")
                        if k in ev:
                            ev[k] = v
                    if ev["data"]:
                        self.events.append((ev["event"], ev["id"], ev["data"]))
        except OSError:
            pass
        self.closed = True

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def env_ok() -> bool:
    return os.path.exists(REPO / "tools" / "simulate.py")
