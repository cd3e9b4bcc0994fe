"""The hub: the latest reading, the last raw telegram and bounded subscriptions.

Strategy: the meter task calls `publish()` and never waits: every subscriber has
a fixed-size ring that drops its oldest sample (and counts it) when the
consumer falls behind, so a slow MQTT broker or HTTP client can never stall
the serial reader or grow the heap. Consumers `await sub.get()` and
take it off `hub.subs` when they end; a subscription whose consumer died without
doing so (full, nothing taken for `_DEAD_MS`) is removed at the next publish, so
it cannot hold samples for ever. A subscriber is anything with `name`, `maxlen`,
`dropped`, `_q` (what waits) and `put(sample)` (MqttService is one itself).
"""

import asyncio

from clock import ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_DEAD_MS = const(60000)


class Sample:
    """One accepted telegram: its reading as JSON, its raw bytes, when it came.

    `body` is the one JSON text of the reading that MQTT, SSE and HTTP all send
    (`{"timestamp": ..., "meter": ..., "energy_import_kwh": 896.020, ...}`,
    exact digits, see p1.body); `body[:cut]` ends with the meter value, where
    HTTP adds `"age_s"`. `p1.bodyread.items(body)` walks its names and values.
    """

    def __init__(self, seq, body, cut, raw, ticks):
        self.seq = seq  # 1, 2, 3 ... per boot
        self.body = body  # bytes: the reading as JSON
        self.cut = cut
        self.raw = raw  # bytes, the telegram exactly as received
        self.ticks = ticks  # clock.ticks_ms() when its last byte was parsed

    def age_ms(self):
        return ticks_diff(ticks_ms(), self.ticks)


class Subscription:
    """A bounded FIFO of samples that drops the oldest when full."""

    def __init__(self, maxlen, name=""):
        self.name = name
        self.maxlen = maxlen
        self.dropped = 0
        self._q = []  # oldest first, at most maxlen (2 or 4: a list that never grows past that)
        self._event = asyncio.Event()
        self.last_get = ticks_ms()

    def put(self, item):
        q = self._q
        if len(q) == self.maxlen:
            q.pop(0)
            self.dropped += 1
        q.append(item)
        self._event.set()

    def get_nowait(self):
        """Return the oldest item, or None when empty."""
        self.last_get = ticks_ms()
        return self._q.pop(0) if self._q else None

    async def get(self):
        while not self._q:
            self._event.clear()
            await self._event.wait()
        return self.get_nowait()


class Hub:
    """Latest sample, subscriptions and the status sections of every module."""

    def __init__(self):
        self.sample = None  # latest Sample or None before the first telegram
        self.seq = 0
        self.removed = 0  # subscriptions whose consumer had died
        self.subs = []
        self._status = []  # (name, callable returning a dict) for /api/v1/status, in order

    def publish(self, body, cut, raw, ticks=None):
        """Record an accepted telegram (its JSON body, see Sample) and hand it to every subscriber."""
        self.seq += 1
        now = ticks_ms()
        s = Sample(self.seq, body, cut, raw, now if ticks is None else ticks)
        self.sample = s
        dead = None
        for sub in self.subs:
            if len(sub._q) == sub.maxlen and ticks_diff(now, sub.last_get) > _DEAD_MS:
                dead = sub
            else:
                sub.put(s)
        if dead is not None:  # one per telegram is plenty
            self.subs.remove(dead)
            self.removed += 1
        return s

    def subscribe(self, maxlen=8, name=""):
        """A new Subscription; the consumer takes it off `subs` when it ends (if still there)."""
        sub = Subscription(maxlen, name)
        self.subs.append(sub)
        return sub

    def add_status(self, name, fn):
        """Register `fn() -> dict` shown as section `name` of the status (a name
        registered again is replaced)."""
        st = self._status
        for x in st:  # (no comprehension: each is a function of its own in RAM)
            if x[0] == name:
                st.remove(x)
                break
        st.append((name, fn))

    def sections(self):
        """[(name, fn)] of the status sections, in the order they were added, then the hub's own."""
        return self._status + [("subscribers", self._subscribers)]

    def _subscribers(self):
        q = []
        for s in self.subs:
            q.append({"name": s.name, "queued": len(s._q), "dropped": s.dropped})
        return {"removed_dead": self.removed, "queues": q}
