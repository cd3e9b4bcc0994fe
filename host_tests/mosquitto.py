"""A real mosquitto broker on a free 127.0.0.1 port, for the MQTT tests.

    with Mosquitto(tmp_path) as b:                       # anonymous
    with Mosquitto(tmp_path, users={"u": "pw"}) as b:    # password_file
    with Mosquitto(tmp_path, tls=True) as b:             # mqtts, b.ca is the CA file

`b.stop()` / `b.start()` stop and restart it on the same port (persistence
on, so a subscriber's persistent session survives the restart).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from runtime_harness import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def available() -> bool:
    return os.access(MOSQUITTO, os.X_OK)


def make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1 -> (ca, cert, key) files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p1 test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    )
    return paths


class Mosquitto:
    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: bool = False):
        self.dir = Path(folder) / "mosquitto"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.ca = None
        self.proc: subprocess.Popen | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.dir}/",
            f"log_dest file {self.dir / 'mosquitto.log'}",
            "log_type all",
            "max_queued_messages 10000",
            "set_tcp_nodelay true",  # no Nagle on the broker side either (latency bench)
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops privileges and cannot read its files
        if users:
            pw = self.dir / "passwd"
            pw.write_text("")
            for u, p in users.items():
                subprocess.run([PASSWD, "-b", str(pw), u, p], check=True, capture_output=True)
            pw.chmod(0o600)
            lines += [f"password_file {pw}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            self.ca, cert, key = make_certs(self.dir)
            lines += [f"cafile {self.ca}", f"certfile {cert}", f"keyfile {key}"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.txt", "ab"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + self.log())
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen: " + self.log())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        out = ""
        for name in ("stderr.txt", "mosquitto.log"):
            p = self.dir / name
            if p.exists():
                out += p.read_text(errors="replace")[-4000:]
        return out

    def __enter__(self) -> "Mosquitto":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Subscriber:
    """A paho-mqtt client that records every message: [(topic, payload bytes, retain)].

    `clean=False` with a fixed client id keeps its session (and QoS 1 queue)
    across its own reconnects and broker restarts.
    """

    def __init__(
        self,
        broker: Mosquitto,
        topics: list[str],
        qos: int = 1,
        clean: bool = True,
        client_id: str = "",
        user: str | None = None,
        password: str | None = None,
    ):
        import threading

        import paho.mqtt.client as paho

        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sub-{time.monotonic_ns()}",
            clean_session=clean,
        )
        if user:
            self.c.username_pw_set(user, password)
        if broker.tls:
            self.c.tls_set(ca_certs=str(broker.ca))
        self.c.reconnect_delay_set(0.05, 0.2)
        self.topics = topics
        self.qos = qos

        def on_connect(client, userdata, flags, rc, props=None):
            client.subscribe([(t, qos) for t in self.topics])
            self.connected.set()

        def on_message(client, userdata, m):
            with self.cond:
                self.messages.append((m.topic, m.payload, bool(m.retain)))
                self.cond.notify_all()

        def on_disconnect(*a):
            self.connected.clear()

        self.c.on_connect = on_connect
        self.c.on_message = on_message
        self.c.on_disconnect = on_disconnect
        self.c.connect(broker.host, broker.port, keepalive=5)
        self.c.loop_start()
        if not self.connected.wait(5):
            raise RuntimeError("subscriber could not connect")
        time.sleep(0.1)  # SUBACK

    def on(self, topic: str) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages if t == topic]

    def wait(self, pred, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))
            return True

    def wait_count(self, topic: str, n: int, timeout: float = 10.0) -> list[bytes]:
        self.wait(lambda: len([1 for t, _, _ in self.messages if t == topic]) >= n, timeout)
        return self.on(topic)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()
