"""MQTT policy: keeps the dongle published with two tasks per connection.

Strategy (after peterhinch's mqtt_as): `net.mqtt` encodes and decodes and
raises `OSError`; everything that decides lives here.

- Intake: the service is the hub's subscriber for "mqtt" (`put` = `offer`):
  the hub hands it each sample as it publishes it. `offer()` applies
  `interval_s`, puts the reading's messages into the outbox ring (room for
  `buffer` readings' messages; full: the oldest message moves to the flash
  spool, `net.spool`, when a spool dir is given, or is dropped and counted)
  and writes what may go now. It never waits: stream writes take the bytes or
  buffer them, so the meter task never waits on the network either.
- `run()` owns the connection: log in (`net.mqtt_rare`: CONNECT with a
  retained "offline" Last Will, the subscriptions, then "online"), then the
  session loop, which sleeps at most a second between rounds (no Event, no
  wait_for: it waits on nothing else): keepalive, resends, discovery, draining
  what MicroPython's stream buffered; on any error it closes and reconnects
  with exponential backoff plus jitter.
- The connection's reader task decodes what the broker sends: a PUBACK frees
  a slot in flight, so it writes the next message; a command is handled by
  `net.mqtt_setup`; an error ends the session (at the loop's next turn).
- QoS 1: at most `max_inflight` unacknowledged messages; one not acknowledged
  within `ack_timeout_ms` is sent again with DUP, and everything still in
  flight is sent again (DUP, in order) after a reconnect, before the spool
  (oldest) and then the ring: the order the readings were taken.
- Keepalive: a PINGREQ when nothing was sent, or nothing heard, for half the
  keepalive; a connection that stays silent for the whole keepalive is dead.
- RAM: what runs rarely is imported when it is needed and dropped after it
  (`mem.unload`): logging in (`net.mqtt_rare`), set-up, commands and stop
  (`net.mqtt_setup`), a
  discovery round (`net.ha` with the JSON writer), and the spool (`net.spool`,
  opened when the ring first overflows or an earlier run left spool files,
  closed once everything in it is delivered and its files are gone).
"""

import asyncio
import gc
from binascii import crc32
from random import getrandbits

import log
from clock import ticks_diff, ticks_ms
from mem import call, done, loaded, turn, unload, unload_new
from net import mqtt
from net.mqtt import sleep_ms

try:
    from micropython import const
except ImportError:  # CPython
    const = int
    from typing import Any  # (annotations only: never evaluated on MicroPython)

_PUBLISH = const(3)
_PUBACK = const(4)
# What a rare job (net.mqtt_rare, net.mqtt_setup, net.ha) may import that nothing on the hot path keeps.
_RARE = (
    "net.mqtt_rare", "net.mqtt_setup", "net.mqtt_status", "net.ha",
    "p1.table", "p1.jsonout", "p1.values", "p1.bodyread",
)  # fmt: skip
# MqttService._n: counters and times (ticks_ms). net.mqtt_rare and net.mqtt_setup count in it too, and
# shows them (its status(): keep its indexes the same).
_PUB = const(0)  # state messages acknowledged (QoS 1) or written (QoS 0)
_CONN = const(1)  # connections made
_SKIP = const(2)  # samples skipped by interval_s
_CMD = const(3)  # commands (net.mqtt_setup)
_BAD = const(4)  # bad commands (net.mqtt_setup)
_DISC = const(5)  # discovery rounds
_RX = const(6)  # the last packet read
_TX = const(7)  # the last packet written
_SINCE = const(8)  # the state changed
_NAMES = const(9)  # readings in the body offer() last looked at
_LAST = const(10)  # the last sample offer() took (None: none yet)
# 11: CONNACK's return code of a refused login (net.mqtt_rare)
_HOLD = const(12)  # no discovery round before this tick (None: none held; net.ha.announce)


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
    it holds nothing (everything delivered, its files removed). Made by
    `net.mqtt_setup.outbox()`.
    """

    # made by net.mqtt_setup.outbox() (declared for type checkers; no bytecode)
    size: int  # ring items at most
    ring: list
    inflight: list
    max_inflight: int
    qos: int
    dropped: int  # ring overflows without a spool; a spool counts its own
    spool: Any  # a net.spool.Spool while open, else None
    spool_at: Any  # (dir, limit in bytes) for the spool, or None: no spool
    spool_dropped: int  # counted by spools since closed
    spool_errors: int
    _pid: int  # the last packet id given out

    def put(self, msg):
        """Queue `msg` behind the others. A MemoryError (opening the spool, writing to
        it) leaves the queue as it was: `msg` is not taken (the intake counts it),
        nothing taken before is lost."""
        ring = self.ring
        if len(ring) >= self.size:
            if self.spool_at is None:
                self.dropped += 1
            else:
                if self.spool is None:
                    from net.spool import Spool

                    self.spool = Spool(*self.spool_at)
                old = ring[0]  # (off the ring once it is on flash, or counted as lost)
                self.spool.append(old[0], old[1], self.qos, old[2])  # counts its own failures
            ring.pop(0)
        ring.append(msg)

    def take(self, now):
        """The next message to send and its pid (0 for QoS 0), or None. A MemoryError
        (reading the spool) leaves every message where it was: tried again later."""
        qos = self.qos
        if qos and len(self.inflight) >= self.max_inflight or not self.ring and self.spool is None:
            return None  # (nothing allocated: the session loop asks every tick)
        e = [0, None, now, 1, None]  # its in-flight entry, made first: no allocation after a message is taken
        sp = self.spool
        if sp is not None:
            msg = sp.read()  # (topic, payload, retain) or None; the cursor moves in RAM only
            if msg is not None:
                e[1], e[4] = msg, sp.last
        if e[1] is None:
            if not self.ring:
                return None
            e[1] = self.ring.pop(0)
        msg = e[1]
        if not qos:
            if e[4] is not None:
                self._commit()
            return msg, 0
        while True:  # the next packet id not in flight
            self._pid = pid = self._pid % 65535 + 1
            for f in self.inflight:
                if f[0] == pid:
                    break
            else:
                break
        e[0] = pid
        self.inflight.append(e)  # (at most max_inflight: the list no longer grows)
        return msg, pid

    def ack(self, pid):
        """Forget in-flight `pid`; its topic, or None if it was not in flight."""
        for e in self.inflight:
            if e[0] == pid:
                self.inflight.remove(e)
                if e[4] is not None:
                    self._commit()
                return e[1][0]
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
            unload("net.spool")  # (fsutil: net.spool loads it per call)


class MqttService:
    """Publishes the hub's readings to one broker; see the module docstring.

    It is the hub's subscriber "mqtt" itself (`name`, `maxlen`, `dropped`,
    `_q`, `put()`): nothing waits in the hub for it."""

    # Tunables (class attributes: a test or a board may change them).
    connect_timeout_ms = 10000
    write_timeout_ms = 10000
    ack_timeout_ms = 5000
    max_tries = 3  # sends of one QoS 1 message per connection before it is declared dead
    backoff_min_ms = 1000
    backoff_max_ms = 60000
    auth_backoff_ms = 30000  # first wait after "not authorized"
    oom_wait_ms = 10000  # at least, before the next login after a session that ran out of memory
    discovery_again_ms = 15000  # a discovery round that ran out of memory starts again after this
    max_inflight = 1  # QoS 1 messages awaiting PUBACK: each holds its ~1 KB payload (a meter sends one a second)
    name = "mqtt"  # as the hub's subscriber
    maxlen = 1
    _q = ()  # (nothing waits in the hub)
    # set by net.mqtt_setup.init (declared for type checkers; no bytecode)
    cfg: dict
    hub: Any  # a hub.Hub
    device_id: str
    version: str
    base: str
    state_topic: str
    outbox: Outbox
    dropped: int
    _state: str
    _last_error: str
    _n: list
    _announced: bytes
    _discover: bool
    _w: Any
    _err: Exception | None
    _stopping: bool
    _ctx: Any  # the TLS context (net.mqtt_rare.connect), kept between sessions

    def __init__(self, hub, cfg, device_id, version="", board=None, spool_dir=None):
        """The service for `hub` with the "mqtt" config section `cfg` (a partial one is
        completed from config.DEFAULTS); `spool_dir`: where the flash spool may go."""
        self._rare("net.mqtt_setup", "init", hub, cfg, device_id, version, spool_dir)

    def status(self):
        return self._rare("net.mqtt_status", "status")

    def _to(self, state):
        if state != self._state:
            self._state = state
            self._n[_SINCE] = ticks_ms()

    # ---- intake (never waits) -----------------------------------------------------

    def offer(self, sample):
        """Queue the messages of one sample (after `interval_s`) and write what may go
        now; True if queued. The hub calls it (as `put`) for each sample it publishes."""
        c = self.cfg
        n = self._n
        try:
            if c["interval_s"] and n[_LAST] is not None:
                if ticks_diff(sample.ticks, n[_LAST]) < c["interval_s"] * 1000:
                    n[_SKIP] += 1
                    return False
            n[_LAST] = sample.ticks
            body = sample.body
            put = self.outbox.put
            put((self.state_topic, body, False))  # the one body, shared
            if c["per_value_topics"]:
                from p1.bodyread import items, text_value

                for name, v in items(body):
                    v = text_value(v)
                    if v is not None:  # a telegram without a time stamp has timestamp null
                        put((self.base + "/" + name, v.encode(), False))
            if c["raw_topic"] and sample.raw:
                put((self.base + "/telegram", sample.raw, False))
            if c["discovery"] and not self._discover:
                # A new reading name calls for a discovery round. Reading every name of every
                # telegram would leave ~8 KB of garbage each time (64-bit): look when the number
                # of readings changed, and every 64th telegram for a name that replaced another
                # or one that is gone.
                k = body.count(b'": ')
                if k != n[_NAMES] or not sample.seq % 64:
                    n[_NAMES] = k
                    before = loaded("p1.bodyread")  # (not kept: ~1 KB, 64-bit)
                    from p1.bodyread import items

                    found = 0
                    for name, _ in items(body):
                        crc = (crc32(name.encode()) & 0x3FFFFFFF).to_bytes(4, "little")  # as net.ha.announce
                        if crc in self._announced:
                            found += 1
                        elif name != "meter":
                            self._discover = True
                            break
                    unload_new(before, "p1.bodyread")
                    if not self._discover and not sample.seq % 64 and found < len(self._announced) >> 2:
                        self._discover = True  # a reading is gone: a full round empties its config
                        self._announced = b""
            self._pump()
            return True
        except MemoryError:  # this reading is lost, the service is not
            self.dropped += 1
            log.oom("mqtt")
        except Exception as e:  # noqa: BLE001 - the hub's publish must go on
            log.exc(e, "mqtt")
        return False

    put = offer  # the hub's name for it

    def _pump(self, resend=False):
        """Write what may go now: with `resend`, first the in-flight messages whose PUBACK
        is overdue (again, DUP: OSError after `max_tries` sends); then what the outbox lets
        go, while connected and, on MicroPython, while the stream took everything so far
        (the session loop drains the rest). A broken link, or a write that ran out of
        memory, ends the session."""
        ob = self.outbox
        w = self._w
        now = ticks_ms()
        try:
            if resend and w is not None:
                for e in ob.inflight:
                    if e[3] and ticks_diff(now, e[2]) < self.ack_timeout_ms:
                        continue
                    if e[3] >= self.max_tries:
                        raise OSError("no PUBACK for packet %d" % e[0])
                    e[2] = now
                    e[3] += 1
                    m = e[1]
                    w.write(mqtt.publish_head(m[0], len(m[1]), ob.qos, m[2], True, e[0]))
                    w.write(m[1])
            while w is not None and not getattr(w, "out_buf", b""):
                try:
                    m = ob.take(now)
                except MemoryError:  # every message stays where it was: the next round takes it
                    log.oom("mqtt")
                    return
                if m is None:
                    return
                (topic, payload, retain), pid = m  # pyright: ignore[reportGeneralTypeIssues]
                w.write(mqtt.publish_head(topic, len(payload), ob.qos, retain, False, pid))
                w.write(payload)
                self._n[_TX] = now
                if not pid and topic == self.state_topic:
                    self._n[_PUB] += 1
        except (OSError, MemoryError) as e:  # the session loop reconnects (QoS 1 sends it again)
            self._err = e
            self._w = None
            if isinstance(e, MemoryError) and w is not None:  # a packet may be cut short (its
                w.close()  # head sent, not its payload): nothing may follow it, or the broker reads on

    # ---- the connection -----------------------------------------------------------

    async def run(self):
        """The service: returns when disabled or stopped; cancel it (or `stop()`) to end it.

        Cancelled while connected, it says "offline" and disconnects cleanly.
        """
        if not self.cfg["enabled"]:  # state "disabled" since __init__
            return
        subs = self.hub.subs
        if self not in subs:
            subs.append(self)  # from now on the hub hands us each sample (put)
        ob = self.outbox
        n = self._n
        backoff = 0  # ms before the next attempt, before jitter; 0 = none
        while not self._stopping:
            if backoff:  # 50..100 %: dongles that lost the same broker do not return in step
                await sleep_ms(backoff // 2 + getrandbits(16) % (backoff // 2 + 1))  # (no rare code in RAM)
                if self._stopping:
                    break
            w = rx = None
            try:
                # net.mqtt_rare: the login, the session's reader task
                w, rx, alive, tick = await self._slow("net.mqtt_rare", "connect")
                backoff = self.backoff_min_ms
                half = alive // 2
                ping = n[_TX]
                while not self._stopping:
                    if self._err is not None:
                        raise self._err
                    now = ticks_ms()
                    if ticks_diff(now, n[_RX]) >= alive:
                        raise OSError("broker silent for %d s" % (alive // 1000))
                    if ticks_diff(now, ping) >= half and (
                        ticks_diff(now, n[_TX]) >= half or ticks_diff(now, n[_RX]) >= half
                    ):  # nothing sent, or nothing heard, for half the keepalive
                        ping = n[_TX] = now
                        w.write(b"\xc0\x00")  # PINGREQ
                    # No local (nor a stack slot of this long-lived frame) may keep a message
                    # or a sample: a reading's body is ~1 KB that would stay alive.
                    self._pump(True)
                    if self._err is not None:  # (before the stream's buffer is written out)
                        raise self._err
                    # Discovery once a backlog on flash has been sent: the two jobs' code
                    # (net.ha, net.spool) would otherwise be in RAM at the same time.
                    if (
                        self._discover
                        and ob.spool is None
                        and self.hub.sample is not None
                        and (n[_HOLD] is None or ticks_diff(now, n[_HOLD]) >= 0)
                    ):
                        self._discover = False  # a new name from now on calls for another round
                        n[_HOLD] = None
                        if await self._slow("net.ha", "announce"):  # (it takes the body: no stale ref here)
                            n[_DISC] += 1
                    if getattr(w, "out_buf", None):  # what MicroPython's stream could not write at once
                        await mqtt.write(w, b"", self.write_timeout_ms)  # then at once round again
                    else:
                        await sleep_ms(tick)
            except asyncio.CancelledError:
                await self.stop()
                raise
            except Exception as e:  # OSError (timeouts too), ssl errors, a refused login...
                self._err = e
            finally:
                self._w = None
                # net.mqtt_rare: the error shown, the link closed, the wait before the next attempt
                backoff = await self._slow("net.mqtt_rare", "end", w, rx, backoff)
        self._to("disconnected")

    async def _slow(self, module, job, *args):
        """`_rare` for a job that awaits: in the cold slot (`mem.turn`), one at a time
        with the status page and the others. The heap is collected once the slot is
        held (as histjob does): the job's code goes where the garbage was, not past the
        live data."""
        await turn()
        gc.collect()
        try:
            return await self._rare(module, job, *args)
        finally:
            done()

    def _rare(self, module, job, *args):
        """`<module>.<job>(self, *args)`: the module, and what it imports, is loaded for
        the call and dropped after it (a coroutine it returns, awaited by the caller,
        keeps what it uses alive until it ends)."""
        return call(module, job, self, *args, drop=_RARE)

    async def _rx(self, reader, w):
        """The connection's reader: PUBACKs free slots in flight (and the next message
        goes), commands go to `net.mqtt_setup.command`; an error ends the session."""
        n = self._n
        try:
            while True:
                first, body = await mqtt.read_packet(reader)
                n[_RX] = ticks_ms()
                t, pid, topic, payload = mqtt.decode(first, body)
                if t == _PUBACK:
                    if self.outbox.ack(pid) == self.state_topic:
                        n[_PUB] += 1
                    self._pump()
                elif t == _PUBLISH:  # a command, or Home Assistant's birth message
                    self._rare("net.mqtt_setup", "command", w, pid, topic, payload)
        except Exception as e:  # noqa: BLE001
            if self._err is None:  # (the first cause: a write that closed the link ended it)
                self._err = e if isinstance(e, (OSError, MemoryError)) else OSError(repr(e))

    def stop(self):
        """Say "offline" (retained) and disconnect cleanly (DISCONNECT tells the broker
        to drop the will); run() ends. Returns the coroutine to await (net.mqtt_setup)."""
        return self._rare("net.mqtt_setup", "stop")
