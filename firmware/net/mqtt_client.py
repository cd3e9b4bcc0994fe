"""MQTT policy: one supervisor task that keeps the dongle published.

Strategy (after peterhinch's mqtt_as): `net.mqtt` encodes and decodes and
raises `OSError`; everything that decides lives here.

- An intake task takes samples from a small hub subscription, applies
  `interval_s`, encodes the state JSON once and puts the messages into the
  outbox ring (room for `buffer` readings' messages). Full: the oldest message moves to the
  flash spool (`net.spool`, `spill_kb`, when a spool dir is given), or is
  dropped and counted without one. It never waits on the network, so the
  meter task never does either.
- The supervisor task owns the connection: connect (CONNECT with a retained
  "offline" Last Will, then "online", subscriptions, discovery), a session
  loop, and reconnects with exponential backoff plus jitter.
- While connected, a reader task decodes what the broker sends (PUBACK,
  PINGRESP, commands) and wakes the supervisor; only the supervisor writes.
- QoS 1: at most `max_inflight` unacknowledged messages; one not acknowledged
  within `ack_timeout_ms` is sent again with DUP, and everything still in
  flight is sent again (DUP, in order) after a reconnect, before the spool
  (oldest) and then the ring: the order the readings were taken.
- Keepalive: a PINGREQ when nothing was sent, or nothing heard, for half the
  keepalive; a connection that stays silent for the whole keepalive is dead.
"""

import asyncio

import log
from clock import ticks_diff, ticks_ms
from hub import Subscription
from net import mqtt
from p1.body import items, text_value

try:
    from random import getrandbits
except ImportError:  # pragma: no cover - every port we use has it

    def getrandbits(n):
        return ticks_ms() & ((1 << n) - 1)


# The mqtt config keys this service reads (config.py documents them).
_KEYS = (
    "enabled host port tls ca insecure user password base_topic client_id discovery discovery_prefix"
    " interval_s qos keepalive_s per_value_topics raw_topic buffer spill_kb"
)


def tls_context(ca, insecure):
    """An SSL context for the client side, on CPython or MicroPython."""
    import ssl

    create = getattr(ssl, "create_default_context", None)
    if create is not None:  # CPython
        ctx = create(cafile=ca or None)
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # MicroPython >= 1.23
    if insecure:
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if not ca:
        raise OSError("TLS needs a CA file (mqtt.ca) or mqtt.insecure")
    ctx.verify_mode = ssl.CERT_REQUIRED
    with open(ca, "rb") as f:
        data = f.read()
    for der in der_certs(data):
        ctx.load_verify_locations(cadata=der)
    return ctx


def der_certs(data):
    """The certificates of a PEM file as DER (MicroPython's mbedTLS takes DER only);
    DER data as it is."""
    if not data.startswith(b"-----"):
        return [data]
    from binascii import a2b_base64

    out = []
    b64 = None
    for line in data.split(b"\n"):
        line = line.strip()
        if line.startswith(b"-----BEGIN CERTIFICATE"):
            b64 = []
        elif line.startswith(b"-----END CERTIFICATE") and b64 is not None:
            out.append(a2b_base64(b"".join(b64)))
            b64 = None
        elif b64 is not None:
            b64.append(line)
    if not out:
        raise OSError("no certificate in the CA file")
    return out


def jitter(ms):
    """50..100 % of `ms`, so dongles that lost the same broker do not return in step."""
    return ms // 2 + getrandbits(16) % (ms // 2 + 1)


def _nodelay(writer):
    """No Nagle delay for our small packets (CPython; skipped where not offered)."""
    try:
        import socket

        s = writer.get_extra_info("socket")
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except Exception:
        pass


class Outbox:
    """What waits for the broker: a ring, an optional flash spool, the QoS 1 in-flight list.

    Ring items are messages `(topic, payload, retain)`; in-flight entries are
    `[pid, message, sent_ticks, tries, spool_pos]` in send order (`spool_pos`:
    where the message sits in the spool, None if it came from the ring). With a
    `spool` (net.spool.Spool) a full ring moves its oldest message to flash
    instead of dropping it, and `take()` reads the spool first; otherwise pure.
    """

    def __init__(self, size, max_inflight=8, spool=None):
        self.ring = Subscription(size, "mqtt-outbox")
        self.inflight = []
        self.max_inflight = max_inflight
        self.spool = spool
        self.qos = 1  # recorded with spooled messages
        self._pid = 0

    def __len__(self):
        """Messages in RAM (ring and in flight); `spool` has its own count."""
        return len(self.ring) + len(self.inflight)

    @property
    def dropped(self):
        return self.ring.dropped + (self.spool.dropped if self.spool is not None else 0)

    def put(self, msg):
        sp = self.spool
        if sp is not None and len(self.ring) >= self.ring.maxlen:
            old = self.ring.get_nowait()
            if old is not None:
                sp.append(old[0], old[1], self.qos, old[2])  # counts its own failures
        self.ring.put(msg)

    def _spool_upto(self):
        """Where the oldest spooled message still in flight sits; None if there is none."""
        for e in self.inflight:
            if e[4] is not None:
                return e[4]
        return None

    def next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            for e in self.inflight:
                if e[0] == self._pid:
                    break
            else:
                return self._pid

    def take(self, qos, now):
        """The next message to send and its pid (0 for QoS 0), or None."""
        if qos and len(self.inflight) >= self.max_inflight:
            return None
        msg = pos = None
        sp = self.spool
        if sp is not None:
            r = sp.read()  # no file I/O when nothing is spooled
            if r is not None:
                msg, pos = (r[0], r[1], r[3]), sp.last
        if msg is None:
            msg = self.ring.get_nowait()
            if msg is None:
                return None
        if not qos:
            if pos is not None:
                sp.commit(self._spool_upto())  # pyright: ignore[reportOptionalMemberAccess]
            return msg, 0
        pid = self.next_pid()
        self.inflight.append([pid, msg, now, 1, pos])
        return msg, pid

    def ack(self, pid):
        """Forget in-flight `pid`; the message, or None if it was not in flight."""
        for i in range(len(self.inflight)):
            if self.inflight[i][0] == pid:
                e = self.inflight.pop(i)
                if e[4] is not None and self.spool is not None:
                    self.spool.commit(self._spool_upto())
                return e[1]
        return None

    def overdue(self, now, timeout_ms):
        """In-flight entries sent at least `timeout_ms` ago, oldest first."""
        return [e for e in self.inflight if ticks_diff(now, e[2]) >= timeout_ms]


class MqttService:
    """Publishes the hub's readings to one broker; see the module docstring."""

    # Tunables (class attributes: a test or a board may change them).
    connect_timeout_ms = 10000
    write_timeout_ms = 10000
    ack_timeout_ms = 5000
    max_tries = 3  # sends of one QoS 1 message per connection before it is declared dead
    backoff_min_ms = 1000
    backoff_max_ms = 60000
    auth_backoff_ms = 30000  # first wait after "not authorized"
    max_inflight = 8
    intake_size = 4  # the intake never waits on the network: it takes each sample at once

    def __init__(self, hub, cfg, device_id, version="", board=None, spool_dir=None):
        c = cfg or {}
        for k in _KEYS.split():
            if k not in c:  # a partial section (tests, tools): the config module's defaults
                from config import DEFAULTS

                c = dict(DEFAULTS["mqtt"])
                c.update(cfg or {})
                break
        self.cfg = c
        self._stopping = False  # set by stop(): ends the supervisor even if a cancel was lost
        self.hub = hub
        self.board = board
        self.device_id = device_id
        self.version = version
        self.base = c["base_topic"] or "p1/" + device_id
        self.client_id = c["client_id"] or "p1-" + device_id
        self.qos = 1 if c["qos"] else 0
        self.keepalive_s = int(c["keepalive_s"])  # sent in CONNECT; 0 = broker never times us out
        # Our own ping / dead-link timing; with keepalive 0 we still check every 60 s.
        self.keepalive_ms = max(self.keepalive_s or 60, 2) * 1000
        self.interval_ms = int(c["interval_s"]) * 1000
        self.state_topic = self.base + "/state"
        self.status_topic = self.base + "/status"
        self.set_prefix = self.base + "/set/"
        self.ha_status_topic = c["discovery_prefix"] + "/status"
        spool = None
        if spool_dir is not None and int(c["spill_kb"]) > 0:
            from net.spool import Spool

            spool = Spool(spool_dir, int(c["spill_kb"]) * 1024)
        # `buffer` counts readings: each one is a state, plus a message per value
        # with per_value_topics and the telegram with raw_topic.
        per_reading = 1 + (1 if c["raw_topic"] else 0)
        if c["per_value_topics"]:
            from p1.table import names

            per_reading += len(names())
        self.outbox = Outbox(max(int(c["buffer"]), 1) * per_reading, self.max_inflight, spool)
        self.outbox.qos = self.qos
        self._sub = None
        self._state = "disconnected" if c["enabled"] else "disabled"
        self._last_error = ""
        self._published = 0
        self._reconnects = 0
        self._connects = 0
        self._skipped = 0
        self._commands = 0
        self._bad_commands = 0
        self._discovery_sent = 0
        self._announced = set()  # reading names with a discovery config sent
        self._discover = False  # a discovery round is due
        self._last_offer = None
        self._since = ticks_ms()
        self._wake = asyncio.Event()
        self._rx_error = None
        self._pubacks = []  # pids of QoS 1 commands to acknowledge
        self._requests = []  # command names to answer
        self._writer = None
        self._last_tx = self._last_rx = self._last_ping = 0
        self._intake_task = None
        self._rx_task = None

    # ---- status -------------------------------------------------------------------

    def status(self):
        c = self.cfg
        sp = self.outbox.spool
        return {
            "state": self._state,
            "broker": "%s:%d" % (c["host"], c["port"]),
            "tls": bool(c["tls"]),
            "user": c["user"],
            "client_id": self.client_id,
            "base_topic": self.base,
            "last_error": self._last_error,
            "queued": len(self.outbox),
            "inflight": len(self.outbox.inflight),
            "published": self._published,
            "dropped": self.outbox.dropped + (self._sub.dropped if self._sub else 0),
            "skipped": self._skipped,
            "reconnects": self._reconnects,
            "since_ms": ticks_diff(ticks_ms(), self._since),
            "discovery_sent": self._discovery_sent,
            "commands": self._commands,
            "bad_commands": self._bad_commands,
            "spooled": len(sp) if sp is not None else 0,
            "spool_bytes": sp.nbytes if sp is not None else 0,
            "spool_dropped": sp.dropped if sp is not None else 0,
            "spool_errors": sp.errors if sp is not None else 0,
        }

    def _set_state(self, state):
        if state != self._state:
            self._state = state
            self._since = ticks_ms()

    # ---- intake (never waits on the network) --------------------------------------

    def offer(self, sample):
        """Queue the messages of one sample (after `interval_s`); True if queued."""
        if self.interval_ms and self._last_offer is not None:
            if ticks_diff(sample.ticks, self._last_offer) < self.interval_ms:
                self._skipped += 1
                return False
        self._last_offer = sample.ticks
        self.outbox.put((self.state_topic, sample.body, False))  # the one body, shared
        if self.cfg["per_value_topics"]:
            for name, v in items(sample.body):
                v = text_value(v)
                if v is not None:  # a telegram without a time stamp has timestamp null
                    self.outbox.put((self.base + "/" + name, v, False))
        if self.cfg["raw_topic"] and sample.raw:
            self.outbox.put((self.base + "/telegram", sample.raw, False))
        if self.cfg["discovery"] and not self._discover:
            for name, _ in items(sample.body):
                if name not in self._announced and name != "meter":
                    self._discover = True
                    break
        self._wake.set()
        return True

    async def _intake(self, sub):
        while True:
            s = await sub.get()
            try:
                self.offer(s)
            except MemoryError:  # this reading is lost, the service is not
                self.outbox.ring.dropped += 1
                log.oom("mqtt intake")
            except Exception as e:  # noqa: BLE001
                log.exc(e, "mqtt intake")

    # ---- supervisor ---------------------------------------------------------------

    async def run(self):
        """The service: returns only when disabled; cancel it (or `stop()`) to end it.

        Cancelled while connected, it says "offline" and disconnects cleanly.
        """
        if not self.cfg["enabled"]:
            self._set_state("disabled")
            return
        if self._sub is None:
            self._sub = self.hub.subscribe(self.intake_size, "mqtt")
        self._intake_task = asyncio.create_task(self._intake(self._sub))
        try:
            await self._supervise()
        finally:
            self._cancel_tasks()
            self._set_state("disconnected")

    def _cancel_tasks(self):
        for t in (self._intake_task, self._rx_task):
            if t is not None:
                t.cancel()
        self._intake_task = self._rx_task = None

    async def _supervise(self):
        backoff = 0  # ms before the next attempt, before jitter; 0 = none
        # CPython 3.11's asyncio.wait_for can swallow a cancel that races with
        # completion; the flag makes stop() final all the same.
        while not self._stopping:
            if backoff:
                await asyncio.sleep(jitter(backoff) / 1000)
                if self._stopping:
                    break
            try:
                reader, writer = await self._connect()
            except mqtt.MQTTError as e:
                self._fail(e, "auth_failed" if e.code in (4, 5) else "disconnected")
                backoff = self._next_backoff(max(backoff * 2, self.auth_backoff_ms))
                continue
            except Exception as e:  # OSError, TimeoutError, ssl errors...
                self._fail(e)
                backoff = self._next_backoff(backoff * 2)
                continue
            self._connects += 1
            if self._connects > 1:
                self._reconnects += 1
            backoff = self.backoff_min_ms
            try:
                await self._session(reader, writer)
            except asyncio.CancelledError:
                await self._goodbye()
                raise
            except Exception as e:
                self._fail(e)
            finally:
                await self._close(writer)

    def _next_backoff(self, ms):
        return min(max(ms, self.backoff_min_ms), max(self.backoff_max_ms, self.backoff_min_ms))

    def _fail(self, e, state="disconnected"):
        msg = str(e) or e.__class__.__name__
        if isinstance(e, asyncio.TimeoutError):
            msg = "timeout"
        self._last_error = msg
        self._set_state(state)

    async def _connect(self):
        c = self.cfg
        self._set_state("connecting")
        if c["tls"]:
            ctx = tls_context(c["ca"], c["insecure"])
            aw = asyncio.open_connection(c["host"], c["port"], ssl=ctx)
        else:
            aw = asyncio.open_connection(c["host"], c["port"])
        reader, writer = await mqtt.wait_ms(aw, self.connect_timeout_ms)
        _nodelay(writer)
        try:
            pkt = mqtt.connect(
                self.client_id,
                self.keepalive_s,
                c["user"] or None,
                c["password"] if c["user"] else None,
                (self.status_topic, "offline", 1, True),
            )
            await mqtt.write(writer, pkt, self.write_timeout_ms)
            first, body = await mqtt.read_packet(reader, self.connect_timeout_ms)
            p = mqtt.decode(first, body)
            if p.type != mqtt.CONNACK:
                raise OSError("expected CONNACK")
            if p.rc:
                raise mqtt.MQTTError(p.rc)
        except BaseException:
            await self._close(writer)
            raise
        return reader, writer

    async def _close(self, writer):
        if self._rx_task is not None:
            self._rx_task.cancel()
            self._rx_task = None
        self._writer = None
        try:
            writer.close()
            await mqtt.wait_ms(writer.wait_closed(), 1000)
        except Exception:
            pass

    async def _send(self, data, more=None):
        await mqtt.write(self._writer, data, self.write_timeout_ms, more)
        self._last_tx = ticks_ms()

    async def _pub(self, topic, payload, qos=0, retain=False, dup=False, pid=0):
        """PUBLISH with the payload written after the header, never copied into it."""
        if isinstance(payload, str):
            payload = payload.encode()
        await self._send(mqtt.publish_head(topic, len(payload), qos, retain, dup, pid), payload)

    async def _session(self, reader, writer):
        self._writer = writer
        self._rx_error = None
        self._pubacks = []
        self._requests = []
        now = ticks_ms()
        self._last_tx = self._last_rx = self._last_ping = now
        self._rx_task = asyncio.create_task(self._rx(reader))
        self._set_state("connected")  # last_error stays: the most recent failure
        await self._pub(self.status_topic, "online", 0, True)
        topics = [(self.set_prefix + "#", 0)]
        if self.cfg["discovery"]:
            topics.append((self.ha_status_topic, 0))
            self._discover = True
            self._announced = set()
        await self._send(mqtt.subscribe(self.outbox.next_pid(), topics))
        for e in self.outbox.inflight:  # unacknowledged before the break: again, in order
            e[2] = ticks_ms()
            e[3] = 1
            await self._pub(e[1][0], e[1][1], self.qos, e[1][2], True, e[0])
        ping_ms = self.keepalive_ms // 2
        while True:
            self._wake.clear()
            if self._rx_error is not None:
                raise self._rx_error
            now = ticks_ms()
            if ticks_diff(now, self._last_rx) >= self.keepalive_ms:
                raise OSError("broker silent for %d s" % (self.keepalive_ms // 1000))
            if ticks_diff(now, self._last_tx) >= ping_ms or (
                ticks_diff(now, self._last_rx) >= ping_ms and ticks_diff(now, self._last_ping) >= ping_ms
            ):
                self._last_ping = now
                await self._send(mqtt.PINGREQ_PACKET)
            for e in self.outbox.overdue(now, self.ack_timeout_ms):
                if e[3] >= self.max_tries:
                    raise OSError("no PUBACK for packet %d" % e[0])
                e[2] = now
                e[3] += 1
                await self._pub(e[1][0], e[1][1], self.qos, e[1][2], True, e[0])
            while self._pubacks:
                await self._send(mqtt.puback(self._pubacks.pop(0)))
            while self._requests:
                await self._answer(self._requests.pop(0))
            if self._discover and self.hub.sample is not None:
                await self._send_discovery(self.hub.sample.body)
            while True:
                m = self.outbox.take(self.qos, ticks_ms())
                if m is None:
                    break
                (topic, payload, retain), pid = m  # pyright: ignore[reportGeneralTypeIssues]
                await self._pub(topic, payload, self.qos, retain, False, pid)
                if not pid and topic == self.state_topic:
                    self._published += 1
            wait = ping_ms - ticks_diff(ticks_ms(), self._last_tx)
            if self.outbox.inflight:
                wait = min(wait, self.ack_timeout_ms - ticks_diff(ticks_ms(), self.outbox.inflight[0][2]))
            try:
                await mqtt.wait_ms(self._wake.wait(), max(min(wait, 1000), 10))
            except asyncio.TimeoutError:
                pass

    async def _send_discovery(self, body):
        from net import ha

        self._discover = False
        prefix = self.cfg["discovery_prefix"]
        for topic, payload in ha.configs(body, self.device_id, self.base, prefix, self.version):
            await self._pub(topic, payload, 0, True)
        for name, _ in items(body):
            self._announced.add(name)
        self._discovery_sent += 1

    async def _answer(self, name):
        if name == "status":
            from p1.jsonout import dumps

            try:
                payload = dumps(self.hub.status())
            except Exception:  # a section that jsonout cannot write
                payload = dumps({"mqtt": self.status()})
            await self._pub(self.status_topic + "/detail", payload, 0, False)
        elif name == "discovery":
            self._discover = True

    def _command(self, topic, payload):
        """A message from the broker: a command or Home Assistant's birth message."""
        if topic == self.ha_status_topic:
            if payload == b"online":
                self._discover = True
            return
        name = topic[len(self.set_prefix) :] if topic.startswith(self.set_prefix) else ""
        if name in ("status", "discovery") and len(payload) <= 64:
            self._commands += 1
            if len(self._requests) < 4:
                self._requests.append(name)
        else:
            self._bad_commands += 1

    async def _rx(self, reader):
        try:
            while True:
                first, body = await mqtt.read_packet(reader, 2 * self.keepalive_ms)
                self._last_rx = ticks_ms()
                p = mqtt.decode(first, body)
                if p.type == mqtt.PUBACK:
                    msg = self.outbox.ack(p.pid)
                    if msg is not None and msg[0] == self.state_topic:
                        self._published += 1
                elif p.type == mqtt.PUBLISH:
                    if p.qos and len(self._pubacks) < 16:
                        self._pubacks.append(p.pid)
                    self._command(p.topic, p.payload)
                else:
                    continue
                self._wake.set()
        except Exception as e:
            self._rx_error = e if isinstance(e, OSError) else OSError(repr(e))
            self._wake.set()

    async def _goodbye(self):
        """Retained "offline" and DISCONNECT (which tells the broker to drop the will)."""
        if self._writer is not None:
            try:
                await mqtt.write(self._writer, mqtt.publish(self.status_topic, "offline", 0, True), 1000)
                await mqtt.write(self._writer, mqtt.DISCONNECT_PACKET, 1000)
            except Exception:
                pass

    async def stop(self):
        """Say "offline" (retained), disconnect cleanly and stop the helper tasks."""
        self._stopping = True
        await self._goodbye()
        self._cancel_tasks()
        self._set_state("disconnected")
