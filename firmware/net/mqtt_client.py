"""MQTT policy: one supervisor task that keeps the dongle published.

Strategy (after peterhinch's mqtt_as): `net.mqtt` encodes and decodes and
raises `OSError`; everything that decides lives here.

- An intake task takes samples from a small hub subscription, applies
  `interval_s` and puts the reading's messages into the outbox ring (room for
  `buffer` readings' messages). Full: the oldest message moves to the flash
  spool (`net.spool`, `spill_kb`, when a spool dir is given), or is dropped
  and counted without one. It never waits on the network, so the meter task
  never does either.
- The supervisor task owns the connection: log in (`net.mqtt_rare`: CONNECT
  with a retained "offline" Last Will, the subscriptions, then "online"),
  discovery, a session loop, and reconnects with exponential backoff plus jitter.
- While connected, a reader task decodes what the broker sends (PUBACK,
  commands) and wakes the supervisor; only the supervisor writes.
- QoS 1: at most `max_inflight` unacknowledged messages; one not acknowledged
  within `ack_timeout_ms` is sent again with DUP, and everything still in
  flight is sent again (DUP, in order) after a reconnect, before the spool
  (oldest) and then the ring: the order the readings were taken.
- Keepalive: a PINGREQ when nothing was sent, or nothing heard, for half the
  keepalive; a connection that stays silent for the whole keepalive is dead.
- RAM: what runs rarely is imported when it is needed and dropped after it
  (`mem.unload`): logging in and the `set/status` answer (`net.mqtt_rare`), a
  discovery round (`net.ha` with the JSON writer), and the spool (`net.spool`,
  opened when the ring first overflows or an earlier run left spool files,
  closed once everything in it is delivered and its files are gone).
"""

import asyncio
import os
from random import getrandbits

import log
from clock import ticks_diff, ticks_ms
from mem import loaded, unload, unload_new
from net import mqtt
from p1.body import items, text_value

try:
    from micropython import const
except ImportError:  # CPython
    const = int

_PUBLISH = const(3)
_PUBACK = const(4)
_NKEYS = const(19)  # keys of config.DEFAULTS["mqtt"]; fewer: a partial section (tests, tools)
# What a rare job (net.mqtt_rare, net.ha) may import that nothing on the hot path keeps.
_RARE = ("net.mqtt_rare", "net.ha", "p1.table", "p1.jsonout", "p1.values")


class Outbox:
    """What waits for the broker: a ring, the flash spool, the QoS 1 in-flight list.

    Ring items are messages `(topic, payload, retain)`, oldest first; in-flight
    entries are `[pid, message, sent_ticks, tries, spool_pos]` in send order
    (`spool_pos`: where the message sits in the spool, None if it came from the
    ring; `tries` 0: to be sent again at once). With a `spool_dir` and a
    `spool_limit` (bytes) a full ring moves its oldest message to flash instead
    of dropping it, and `take()` reads the spool first. The spool
    (`net.spool.Spool`) is opened when the ring first overflows, or at once when
    spool files of an earlier run exist, and closed, its module unloaded, once
    it holds nothing (everything delivered, its files removed).
    """

    def __init__(self, size, max_inflight=8, spool_dir=None, spool_limit=0):
        self.size = size
        self.ring = []
        self.inflight = []
        self.max_inflight = max_inflight
        self.qos = 1
        self.dropped = 0  # ring overflows without a spool; a spool counts its own
        self.spool = None
        self.spool_at = (spool_dir, spool_limit) if spool_dir is not None and spool_limit > 0 else None
        self.spool_dropped = self.spool_errors = 0  # counted by spools since closed
        self._pid = 0
        if self.spool_at is not None:
            try:
                names = os.listdir(spool_dir)
            except OSError:
                names = ()
            for n in names:
                if n.startswith("spool"):  # segments or a cursor of an earlier run
                    from net.spool import Spool

                    self.spool = Spool(spool_dir, spool_limit)
                    self._commit()  # closes it again if it holds nothing
                    break

    def put(self, msg):
        ring = self.ring
        if len(ring) >= self.size:
            if self.spool_at is None:
                self.dropped += 1
            elif self.spool is None:  # (a MemoryError here loses `msg` only, counted by the intake)
                from net.spool import Spool

                self.spool = Spool(*self.spool_at)
            old = ring.pop(0)
            if self.spool is not None:
                self.spool.append(old[0], old[1], self.qos, old[2])  # counts its own failures
        ring.append(msg)

    def next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            for e in self.inflight:
                if e[0] == self._pid:
                    break
            else:
                return self._pid

    def take(self, now):
        """The next message to send and its pid (0 for QoS 0), or None."""
        qos = self.qos
        if qos and len(self.inflight) >= self.max_inflight:
            return None
        msg = pos = None
        sp = self.spool
        if sp is not None:
            r = sp.read()
            if r is not None:
                msg, pos = (r[0], r[1], r[3]), sp.last
        if msg is None:
            if not self.ring:
                return None
            msg = self.ring.pop(0)
        if not qos:
            if pos is not None:
                self._commit()
            return msg, 0
        pid = self.next_pid()
        self.inflight.append([pid, msg, now, 1, pos])
        return msg, pid

    def ack(self, pid):
        """Forget in-flight `pid`; the message, or None if it was not in flight."""
        for e in self.inflight:
            if e[0] == pid:
                self.inflight.remove(e)
                if e[4] is not None:
                    self._commit()
                return e[1]
        return None

    def _commit(self):
        """Tell the spool what is delivered (what it gave out before the oldest spooled
        message still in flight); close it when it holds nothing any more."""
        sp = self.spool
        if sp is None:
            return
        upto = None
        for e in self.inflight:
            if e[4] is not None:
                upto = e[4]
                break
        sp.commit(upto)
        if sp.nbytes == 0:  # nothing unconfirmed left, no files: its RAM back until the next overflow
            self.spool_dropped += sp.dropped
            self.spool_errors += sp.errors
            self.spool = None
            unload("net.spool")


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
    max_inflight = 4  # QoS 1 messages awaiting PUBACK: each holds its ~1 KB payload
    intake_size = 4  # the intake never waits on the network: it takes each sample at once

    def __init__(self, hub, cfg, device_id, version="", board=None, spool_dir=None):
        c = cfg or {}
        if len(c) < _NKEYS:  # a partial section (tests, tools): the config module's defaults
            from config import DEFAULTS

            c = dict(DEFAULTS["mqtt"])
            c.update(cfg or {})
        self.cfg = c
        self.hub = hub
        self.device_id = device_id
        self.version = version
        self.base = c["base_topic"] or "p1/" + device_id
        self.client_id = c["client_id"] or "p1-" + device_id
        self.state_topic = self.base + "/state"
        # `buffer` counts readings: each one is a state, plus a message per value
        # with per_value_topics and the telegram with raw_topic.
        n = 2 if c["raw_topic"] else 1
        if c["per_value_topics"]:
            before = loaded("p1.table")
            from p1.table import names

            n += len(names())
            unload_new(before, "p1.table")
        ob = self.outbox = Outbox(max(c["buffer"], 1) * n, self.max_inflight, spool_dir, c["spill_kb"] * 1024)
        ob.qos = 1 if c["qos"] else 0
        self._state = "disconnected" if c["enabled"] else "disabled"
        self._since = ticks_ms()
        self._last_error = ""
        self._published = self._connects = self._skipped = 0
        self._commands = self._bad_commands = self._discovery_sent = 0
        # Reading names with a discovery config sent, as one string "|a|b|" (a set
        # of 30 names is ~2 KB of small objects).
        self._announced = "|"
        self._names = 0  # readings in the body offer() last looked at
        self._discover = False  # a discovery round is due
        self._last_offer = None
        self._wake = asyncio.Event()
        self._writer = self._sub = self._intake_task = self._rx_task = None
        self._stopping = False  # set by stop(): ends the supervisor even if a cancel was lost

    # ---- status -------------------------------------------------------------------

    def status(self):
        c = self.cfg
        ob = self.outbox
        sp = ob.spool
        sd, se = ob.spool_dropped, ob.spool_errors
        if sp is not None:
            sd += sp.dropped
            se += sp.errors
        return {
            "state": self._state,
            "broker": "%s:%d" % (c["host"], c["port"]),
            "tls": c["tls"],
            "user": c["user"],
            "client_id": self.client_id,
            "base_topic": self.base,
            "last_error": self._last_error,
            "queued": len(ob.ring) + len(ob.inflight),
            "inflight": len(ob.inflight),
            "published": self._published,
            "dropped": ob.dropped + sd + (self._sub.dropped if self._sub is not None else 0),
            "skipped": self._skipped,
            "reconnects": max(self._connects - 1, 0),
            "since_ms": ticks_diff(ticks_ms(), self._since),
            "discovery_sent": self._discovery_sent,
            "commands": self._commands,
            "bad_commands": self._bad_commands,
            "spooled": len(sp) if sp is not None else 0,
            "spool_bytes": sp.nbytes if sp is not None else 0,
            "spool_dropped": sd,
            "spool_errors": se,
        }

    def _set_state(self, state):
        if state != self._state:
            self._state = state
            self._since = ticks_ms()

    # ---- intake (never waits on the network) --------------------------------------

    def offer(self, sample):
        """Queue the messages of one sample (after `interval_s`); True if queued."""
        c = self.cfg
        if c["interval_s"] and self._last_offer is not None:
            if ticks_diff(sample.ticks, self._last_offer) < c["interval_s"] * 1000:
                self._skipped += 1
                return False
        self._last_offer = sample.ticks
        body = sample.body
        put = self.outbox.put
        put((self.state_topic, body, False))  # the one body, shared
        if c["per_value_topics"]:
            for name, v in items(body):
                v = text_value(v)
                if v is not None:  # a telegram without a time stamp has timestamp null
                    put((self.base + "/" + name, v.encode(), False))
        if c["raw_topic"] and sample.raw:
            put((self.base + "/telegram", sample.raw, False))
        if c["discovery"] and not self._discover:
            # A new reading name calls for a discovery round. Reading every name of every
            # telegram would leave ~8 KB of garbage each time (64-bit): look when the number
            # of readings changed, and every 64th telegram for a name that replaced another.
            n = body.count(b'": ')
            if n != self._names or not sample.seq % 64:
                self._names = n
                for name, _ in items(body):
                    if ("|" + name + "|") not in self._announced and name != "meter":
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
                self.outbox.dropped += 1
                log.oom("mqtt intake")
            except Exception as e:  # noqa: BLE001
                log.exc(e, "mqtt intake")

    # ---- supervisor ---------------------------------------------------------------

    async def run(self):
        """The service: returns only when disabled; cancel it (or `stop()`) to end it.

        Cancelled while connected, it says "offline" and disconnects cleanly.
        """
        if not self.cfg["enabled"]:  # state "disabled" since __init__
            return
        if self._sub is None:
            self._sub = self.hub.subscribe(self.intake_size, "mqtt")
        self._intake_task = asyncio.create_task(self._intake(self._sub))
        try:
            await self._supervise()
        finally:
            self._end()

    def _end(self):
        """Cancel the helper tasks: the service is disconnected."""
        for t in (self._intake_task, self._rx_task):
            if t is not None:
                t.cancel()
        self._intake_task = self._rx_task = None
        self._set_state("disconnected")

    async def _rare(self, module, job, *args):
        """`<module>.<job>(self, *args)` awaited: the module, and what it imports for the
        job, is loaded for it and dropped after."""
        before = loaded(*_RARE)
        try:
            return await getattr(__import__(module, None, None, (job,)), job)(self, *args)
        finally:
            unload_new(before, *_RARE)

    async def _supervise(self):
        backoff = 0  # ms before the next attempt, before jitter; 0 = none
        # CPython 3.11's asyncio.wait_for can swallow a cancel that races with
        # completion; the flag makes stop() final all the same.
        while not self._stopping:
            if backoff:  # 50..100 %: dongles that lost the same broker do not return in step
                await asyncio.sleep((backoff // 2 + getrandbits(16) % (backoff // 2 + 1)) / 1000)
                if self._stopping:
                    break
            writer = None
            try:
                self._set_state("connecting")
                reader, writer = await self._rare("net.mqtt_rare", "connect")
                self._connects += 1
                backoff = self.backoff_min_ms
                await self._session(reader, writer)
            except asyncio.CancelledError:
                await self._goodbye()
                raise
            except Exception as e:  # OSError, TimeoutError, ssl errors, a refused login...
                self._last_error = "timeout" if isinstance(e, asyncio.TimeoutError) else str(e) or type(e).__name__
                code = getattr(e, "code", 0)  # net.mqtt_rare.MQTTError: CONNACK's return code
                self._set_state("auth_failed" if code in (4, 5) else "disconnected")
                if writer is None:  # no connection: wait longer each time
                    backoff = min(
                        max(backoff * 2, self.auth_backoff_ms if code else 0, self.backoff_min_ms),
                        max(self.backoff_max_ms, self.backoff_min_ms),
                    )
            finally:
                if writer is not None:
                    await self._close(writer)

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
        """Write a packet (and `more`: a PUBLISH's payload, never copied into the packet)."""
        await mqtt.write(self._writer, data, self.write_timeout_ms, more)
        self._last_tx = ticks_ms()

    async def _session(self, reader, writer):
        # Our own ping / dead-link timing; with keepalive_s 0 (sent as 0: the broker
        # never drops us) we still check every 60 s.
        alive = max(self.cfg["keepalive_s"] or 60, 2) * 1000
        self._writer = writer
        self._rx_error = None
        self._todo = []  # from the reader: packet ids to PUBACK, "status" to answer
        ping = self._last_tx = self._last_rx = ticks_ms()
        self._rx_task = asyncio.create_task(self._rx(reader, 2 * alive))
        self._set_state("connected")  # last_error stays: the most recent failure
        self._discover = self.cfg["discovery"]  # after each connect
        self._announced = "|"
        ob = self.outbox
        qos = ob.qos
        for e in ob.inflight:  # unacknowledged before the break: sent again first, in order
            e[3] = 0
        while True:
            self._wake.clear()
            if self._rx_error is not None:
                raise self._rx_error
            now = ticks_ms()
            if ticks_diff(now, self._last_rx) >= alive:
                raise OSError("broker silent for %d s" % (alive // 1000))
            half = alive // 2
            if ticks_diff(now, ping) >= half and (
                ticks_diff(now, self._last_tx) >= half or ticks_diff(now, self._last_rx) >= half
            ):  # nothing sent, or nothing heard, for half the keepalive
                ping = now
                await self._send(b"\xc0\x00")  # PINGREQ
            for e in ob.inflight[:]:  # a copy: the reader may take PUBACKs meanwhile
                if e[3] and ticks_diff(now, e[2]) < self.ack_timeout_ms:
                    continue
                if e[3] >= self.max_tries:
                    raise OSError("no PUBACK for packet %d" % e[0])
                e[2] = now
                e[3] += 1
                topic, payload, retain = e[1]
                await self._send(mqtt.publish_head(topic, len(payload), qos, retain, True, e[0]), payload)
            while self._todo:
                x = self._todo.pop(0)
                if x == "status":
                    await self._rare("net.mqtt_rare", "answer")
                else:
                    await self._send(bytes((_PUBACK << 4, 2, x >> 8, x & 0xFF)))
            # Discovery once a backlog on flash has been sent: the two jobs' code
            # (net.ha, net.spool) would otherwise be in RAM at the same time.
            if self._discover and self.hub.sample is not None and ob.spool is None:
                await self._rare("net.ha", "announce", self.hub.sample.body)
            while True:
                m = ob.take(ticks_ms())
                if m is None:
                    break
                (topic, payload, retain), pid = m  # pyright: ignore[reportGeneralTypeIssues]
                await self._send(mqtt.publish_head(topic, len(payload), qos, retain, False, pid), payload)
                if not pid and topic == self.state_topic:
                    self._published += 1
            wait = half - ticks_diff(ticks_ms(), self._last_tx)
            if ob.inflight:
                wait = min(wait, self.ack_timeout_ms - ticks_diff(ticks_ms(), ob.inflight[0][2]))
            try:
                await mqtt.wait_ms(self._wake.wait(), max(min(wait, 1000), 10))
            except asyncio.TimeoutError:
                pass

    async def _rx(self, reader, ms):
        try:
            while True:
                first, body = await mqtt.read_packet(reader, ms)
                self._last_rx = ticks_ms()
                t, pid, topic, payload = mqtt.decode(first, body)
                if t == _PUBACK:
                    msg = self.outbox.ack(pid)
                    if msg is not None and msg[0] == self.state_topic:
                        self._published += 1
                elif t == _PUBLISH:
                    if pid and len(self._todo) < 16:
                        self._todo.append(pid)
                    self._command(topic, payload)
                else:
                    continue
                self._wake.set()
        except Exception as e:
            self._rx_error = e if isinstance(e, OSError) else OSError(repr(e))
            self._wake.set()

    def _command(self, topic, payload):
        """A message from the broker: a command or Home Assistant's birth message."""
        if topic == self.cfg["discovery_prefix"] + "/status":
            if payload == b"online":
                self._discover = True
        elif len(payload) > 64 or topic not in (self.base + "/set/status", self.base + "/set/discovery"):
            self._bad_commands += 1
        else:
            self._commands += 1
            if topic.endswith("discovery"):
                self._discover = True
            elif "status" not in self._todo:  # one answer serves all the requests pending
                self._todo.append("status")

    async def _goodbye(self):
        """Retained "offline" and DISCONNECT (which tells the broker to drop the will)."""
        if self._writer is not None:
            try:
                head = mqtt.publish_head(self.base + "/status", 7, 0, True)
                await mqtt.write(self._writer, head, 1000, b"offline\xe0\x00")  # then DISCONNECT
            except Exception:
                pass

    async def stop(self):
        """Say "offline" (retained), disconnect cleanly and stop the helper tasks."""
        self._stopping = True
        await self._goodbye()
        self._end()
