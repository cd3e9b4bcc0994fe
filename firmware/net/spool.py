"""The offline spool: MQTT messages kept on flash while the broker is away.

Strategy: pure file I/O (open/read/write/seek-from-start, os.listdir/stat/
remove/rename only: what MicroPython's FAT and littlefs VFS offer), no
asyncio, never raises but MemoryError, which leaves the spool as it was (a
read or an append tried again later loses nothing). The outbox moves its
oldest RAM message here when its ring is full and reads back from here first
after a reconnect, so the order is the order the readings were taken. The
outbox imports this module only when its ring first overflows (or an earlier
run left spool files) and drops it again once everything in it is delivered
and the files are gone.

Files in `dirname` (the board's storage dir):
  spool-<n>.bin   append-only segments, n = 0, 1, 2 ... oldest first; each at
                  most `limit // 4` bytes. A segment is never appended to again
                  after a reboot (a new one is started), so a torn tail stays
                  at the end of a sealed segment.
  spool.pos       the read cursor "<n> <offset>\n", written (fsutil: power-safe) when
                  a read segment is deleted and every `persist_every` records,
                  never per record. After a crash reading starts again from it:
                  at-least-once, a few duplicates (dedupe by timestamp).

A record: 12-byte header `<HBBHHI` = magic 0x5AA5, flags (bit 0 QoS 1, bit 1
retain), 0, topic length, payload length, CRC-32 of header bytes 2..7 + topic
+ payload; then topic (UTF-8) and payload. A short read, wrong magic, a length
past the end of the file or a CRC mismatch is a bad record: counted in
`errors` and skipped by searching for the next magic that starts a valid
record (a power cut mid-write loses only that record).

Bounds: the files together stay within `limit` bytes: before an append that
would pass it, the oldest segment is deleted and its unread messages counted
in `dropped`. A record is at most MAX_RECORD bytes; bigger messages are not
spooled (counted dropped). RAM: one small list per segment plus one record
while it is read or written. Few methods: each costs RAM while the spool is open.
`fsutil` (the cursor, removing files) is loaded for each such call only
(`mem.call`): it is needed at the open, per deleted segment and every
`persist_every` records, not per message, and an outage or a backlog's drain
is where the heap is fullest (~1 KB of code, 32-bit).
"""

import os
from binascii import crc32
from struct import pack, unpack

from mem import call

try:
    from micropython import const
except ImportError:  # CPython
    const = int


_MAGIC = const(0x5AA5)  # (written little endian: a5 5a)
HEADER_LEN = const(12)  # struct "<HBBHHI"
_MAX_RECORD = const(17408)  # header + topic + payload: a 16 KB raw telegram fits


class Spool:
    """Messages on flash, oldest first; see the module docstring."""

    persist_every = 16  # records read between two cursor writes
    segments = 4  # the limit is split into this many segments

    def __init__(self, dirname, limit):
        """Open the spool in `dirname`, with the segments and cursor of an earlier run."""
        self.dir = dirname
        self.limit = limit
        self.seg_max = max(limit // self.segments, HEADER_LEN + 1)
        self.dropped = 0  # messages lost: oldest segment deleted, too big, write failed
        self.errors = 0  # bad records skipped, file errors
        self.last = None  # (segment, offset) of the record read last
        self._segs = segs = []  # [n, bytes, unread records], oldest first
        self._wn = -1  # segment being appended to; -1: start a new one
        self._rn = self._roff = 0  # read cursor: segment number and offset
        self._unsaved = 0  # records read since the cursor was written
        try:
            names = os.listdir(dirname or ".")
        except OSError:
            names = ()
            self.errors += 1
        ns = []
        for name in names:
            if name.startswith("spool-") and name.endswith(".bin") and name[6:-4].isdigit():
                ns.append(int(name[6:-4]))
        ns.sort()
        cn = -1  # the cursor, from spool.pos (the whole copy a power cut left: fsutil)
        coff = 0
        parts = (call("fsutil", "read", self._p("spool.pos"), 64)[0] or b"").split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            cn, coff = int(parts[0]), int(parts[1])
        h = bytearray(HEADER_LEN)
        for n in ns:
            if n < cn:  # read before the restart
                self._p(n, True)
                continue
            off = coff if n == cn else 0
            k = 0  # records from off up to the first bad header (no CRC check: a figure)
            try:
                size = os.stat(self._p(n))[6]
            except OSError:
                continue
            try:
                with open(self._p(n), "rb") as f:
                    while off + HEADER_LEN <= size:
                        f.seek(off)
                        if f.readinto(h) != HEADER_LEN:
                            break
                        end = off + HEADER_LEN + (h[4] | h[5] << 8) + (h[6] | h[7] << 8)  # no allocation
                        if h[0] | h[1] << 8 != _MAGIC or end > size:
                            break
                        k += 1
                        off = end
            except OSError:
                self.errors += 1
            segs.append([n, size, k])
        if segs:
            self._rn = segs[0][0]
            self._roff = min(coff, segs[0][1]) if segs[0][0] == cn else 0
        elif cn >= 0:
            self._p("spool.pos", True)
        self._next = max(segs[-1][0] + 1 if segs else 0, cn + 1)  # number of the next new segment

    # ---- figures -------------------------------------------------------------------

    def __len__(self):
        n = 0
        for s in self._segs:
            n += s[2]
        return n

    @property
    def nbytes(self):
        n = 0
        for s in self._segs:
            n += s[1]
        return n

    # ---- files ---------------------------------------------------------------------

    def _p(self, n, rm=False):
        """The path of segment `n` (int) or of file `n` (str) in the spool's dir; with
        `rm` the file is removed (quietly: it may be gone already)."""
        d = self.dir
        p = (d if not d or d.endswith("/") else d + "/") + (n if isinstance(n, str) else "spool-%d.bin" % n)
        if rm:
            try:
                call("fsutil", "remove", p)  # (the cursor's copies too: an old .bak must not come back)
            except MemoryError:  # the file stays: the cursor, or the next open, retires it
                self.errors += 1
        return p

    # ---- writing -------------------------------------------------------------------

    def append(self, topic, payload, qos=1, retain=False):
        """Store one message at the end; False if it could not be (counted)."""
        tb = topic.encode() if isinstance(topic, str) else topic
        pb = payload.encode() if isinstance(payload, str) else payload
        size = HEADER_LEN + len(tb) + len(pb)
        if size > self.seg_max or size > _MAX_RECORD:
            self.dropped += 1
            return False
        mid = pack("<BBHH", (1 if qos else 0) | (2 if retain else 0), 0, len(tb), len(pb))
        crc = crc32(pb, crc32(tb, crc32(mid))) & 0xFFFFFFFF
        segs = self._segs
        w = segs[-1] if segs and segs[-1][0] == self._wn else None
        if w is None or w[1] + size > self.seg_max:
            w = [self._next, 0, 0]
            self._next += 1
            segs.append(w)
            self._wn = w[0]
        # the oldest segments go until `size` more bytes fit (never the last)
        total = self.nbytes
        while total + size > self.limit and len(segs) > 1:
            s = segs.pop(0)
            total -= s[1]
            self.dropped += s[2]
            self._p(s[0], True)
            if s[0] >= self._rn:  # the reader was in it: on to the next one
                self._rn, self._roff = segs[0][0], 0
        p = self._p(w[0])
        try:
            with open(p, "ab") as f:
                f.write(pack("<H", _MAGIC) + mid + pack("<I", crc))
                f.write(tb)
                f.write(pb)
        except OSError:
            self.errors += 1
            self.dropped += 1
            self._wn = -1  # sealed: a partial record may end it
            try:
                w[1] = max(os.stat(p)[6], w[1])
            except OSError:
                pass
            return False
        w[1] += size
        w[2] += 1
        return True

    # ---- reading -------------------------------------------------------------------

    def read(self):
        """The oldest unread message `(topic, payload, retain)` (as the outbox queues
        it; the record's QoS flag is the writer's) or None.

        Advances the read cursor in RAM only; `commit()` makes it last. No file
        I/O when nothing is unread. A MemoryError leaves the cursor where it was.
        """
        segs = self._segs
        i = 0
        while i < len(segs):
            s = segs[i]
            if s[0] < self._rn:  # read already, waiting for commit()
                i += 1
                continue
            if s[0] != self._rn:
                self._rn, self._roff = s[0], 0
            if self._roff >= s[1]:
                s[2] = 0
                if i + 1 >= len(segs):
                    return None  # caught up with the writer
                i += 1
                self._rn, self._roff = segs[i][0], 0
                continue
            rec, start, self._roff = self._record(s[0], self._roff, s[1])
            if rec is None:
                continue  # bad record skipped (counted)
            if s[2] > 0:
                s[2] -= 1
            self._unsaved += 1
            self.last = (s[0], start)
            return rec
        return None

    def _record(self, n, off, size):
        """(record or None, its offset, offset after it): the record at `off` of
        segment `n`, or (a bad one there, counted) the next valid one after it."""
        pos = off
        try:
            with open(self._p(n), "rb") as f:
                while pos + HEADER_LEN <= size:
                    f.seek(pos)
                    h = f.read(HEADER_LEN)
                    if len(h) == HEADER_LEN:
                        magic, flags, _, tl, pl, crc = unpack("<HBBHHI", h)
                        end = pos + HEADER_LEN + tl + pl
                        if magic == _MAGIC and end <= size and end - pos <= _MAX_RECORD:
                            # topic and payload read apart: no copy of the payload out of
                            # the record (a second ~1 KB block while the heap is short)
                            t = f.read(tl)
                            b = f.read(pl)
                            if (
                                len(t) == tl and len(b) == pl
                                and crc32(b, crc32(t, crc32(h[2:8]))) & 0xFFFFFFFF == crc
                            ):  # fmt: skip
                                try:
                                    return (t.decode(), b, bool(flags & 2)), pos, end
                                except UnicodeError:
                                    pass
                    if pos == off:
                        self.errors += 1
                    pos += 1
                    while pos + HEADER_LEN <= size:  # on to the next magic, if any
                        f.seek(pos)
                        h = f.read(64)
                        if len(h) < 2:
                            pos = size
                        elif h.find(b"\xa5\x5a") < 0:
                            pos += len(h) - 1
                            continue
                        else:
                            pos += h.find(b"\xa5\x5a")
                        break
                else:
                    if pos == off:  # not even a header's room left
                        self.errors += 1
        except OSError:  # (a MemoryError goes to the caller, the cursor unmoved)
            self.errors += 1
        return None, off, size

    def commit(self, upto=None):
        """Messages before `upto` (segment, offset) are delivered; None: all read ones.

        Deletes segments read to the end, writes the cursor when one was deleted
        or `persist_every` records were read, and starts afresh (no files) once
        everything is delivered.
        """
        n, off = upto if upto is not None else (self._rn, self._roff)
        segs = self._segs
        gone = False
        while segs and segs[0][0] < n:
            self._p(segs.pop(0)[0], True)
            gone = True
        if upto is None and (not segs or (len(segs) == 1 and segs[0][0] == self._rn and self._roff >= segs[0][1])):
            if segs or gone or self._unsaved:
                self._p("spool.pos", True)
                for s in segs:
                    self._p(s[0], True)
                self._segs = []
                self._wn = -1
                self._unsaved = 0
        elif gone or self._unsaved >= self.persist_every:
            try:
                call("fsutil", "write_atomic", self._p("spool.pos"), "%d %d\n" % (n, off))
                self._unsaved = 0
            except (OSError, MemoryError):  # (a MemoryError too: the cursor is written next time)
                self.errors += 1
