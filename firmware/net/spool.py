"""The offline spool: MQTT messages kept on flash while the broker is away.

Strategy: pure file I/O (open/read/write/seek-from-start, os.listdir/stat/
remove/rename only: what MicroPython's FAT and littlefs VFS offer), no
asyncio, never raises. The outbox moves its oldest RAM message here when its
ring is full and reads back from here first after a reconnect, so the order
is the order the readings were taken. The outbox imports this module only
when its ring first overflows (or an earlier run left spool files) and drops
it again once everything in it is delivered and the files are gone.

Files in `dirname` (the board's storage dir):
  spool-<n>.bin   append-only segments, n = 0, 1, 2 ... oldest first; each at
                  most `limit // 4` bytes. A segment is never appended to again
                  after a reboot (a new one is started), so a torn tail stays
                  at the end of a sealed segment.
  spool.pos       the read cursor "<n> <offset>\n", written (tmp + rename) when
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
while it is read or written.
"""

import os
import struct
from binascii import crc32

from fsutil import write_atomic

try:
    from micropython import const
except ImportError:  # CPython
    const = int


MAGIC = const(0x5AA5)
_MAGIC_BYTES = b"\xa5\x5a"  # MAGIC as written (little endian)
HEADER = "<HBBHHI"
HEADER_LEN = const(12)
MAX_RECORD = const(17408)  # header + topic + payload: a 16 KB raw telegram fits
PREFIX = "spool-"
SUFFIX = ".bin"
CURSOR = "spool.pos"


class Spool:
    """Messages on flash, oldest first; see the module docstring."""

    persist_every = 16  # records read between two cursor writes
    segments = 4  # the limit is split into this many segments

    def __init__(self, dirname, limit):
        self.dir = dirname
        self.limit = limit
        self.seg_max = max(limit // self.segments, HEADER_LEN + 1)
        self.dropped = 0  # messages lost: oldest segment deleted, too big, write failed
        self.errors = 0  # bad records skipped, file errors
        self.last = None  # (segment, offset) of the record read last
        self._segs = []  # [n, bytes, unread records], oldest first
        self._wn = -1  # segment being appended to; -1: start a new one
        self._next = 0  # number of the next new segment
        self._rn = 0  # read cursor: segment number and offset
        self._roff = 0
        self._unsaved = 0  # records read since the cursor was written
        self._load()

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

    def _path(self, name):
        d = self.dir
        if not d:
            return name
        return d + name if d.endswith("/") else d + "/" + name

    def _seg_path(self, n):
        return self._path(PREFIX + str(n) + SUFFIX)

    def _remove(self, path):
        try:
            os.remove(path)
        except OSError:
            pass

    def _size(self, n):
        try:
            return os.stat(self._seg_path(n))[6]
        except OSError:
            return -1

    def _read_cursor(self):
        for name in (CURSOR, CURSOR + ".tmp"):
            try:
                with open(self._path(name)) as f:
                    parts = f.read(64).split()
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    return int(parts[0]), int(parts[1])
            except (OSError, ValueError):
                pass
        return -1, 0

    def _write_cursor(self, n, off):
        p = self._path(CURSOR)
        try:
            write_atomic(p, "%d %d\n" % (n, off))
            self._unsaved = 0
        except OSError:
            self.errors += 1

    def _load(self):
        """Find the segments and the cursor left by an earlier run."""
        try:
            names = os.listdir(self.dir or ".")
        except OSError:
            self.errors += 1
            return
        ns = []
        for name in names:
            if name.startswith(PREFIX) and name.endswith(SUFFIX):
                mid = name[len(PREFIX) : len(name) - len(SUFFIX)]
                if mid.isdigit():
                    ns.append(int(mid))
        ns.sort()
        cn, coff = self._read_cursor()
        for n in ns:
            if n < cn:  # read before the restart
                self._remove(self._seg_path(n))
                continue
            size = self._size(n)
            if size < 0:
                continue
            start = coff if n == cn else 0
            self._segs.append([n, size, self._count(n, start, size)])
        if self._segs:
            first = self._segs[0]
            self._rn = first[0]
            self._roff = min(coff, first[1]) if first[0] == cn else 0
            self._next = self._segs[-1][0] + 1
        else:
            if cn >= 0:
                self._remove(self._path(CURSOR))
            self._next = 0
        if cn >= self._next:
            self._next = cn + 1

    def _count(self, n, off, size):
        """Records from `off` up to the first bad header (no CRC check: a figure)."""
        count = 0
        h = bytearray(HEADER_LEN)
        try:
            with open(self._seg_path(n), "rb") as f:
                while off + HEADER_LEN <= size:
                    f.seek(off)
                    if f.readinto(h) != HEADER_LEN:
                        break
                    end = off + HEADER_LEN + (h[4] | h[5] << 8) + (h[6] | h[7] << 8)  # no allocation
                    if h[0] | h[1] << 8 != MAGIC or end > size:
                        break
                    count += 1
                    off = end
        except OSError:
            self.errors += 1
        return count

    # ---- writing -------------------------------------------------------------------

    def append(self, topic, payload, qos=1, retain=False):
        """Store one message at the end; False if it could not be (counted)."""
        tb = topic.encode() if isinstance(topic, str) else topic
        pb = payload.encode() if isinstance(payload, str) else payload
        size = HEADER_LEN + len(tb) + len(pb)
        if size > self.seg_max or size > MAX_RECORD:
            self.dropped += 1
            return False
        mid = struct.pack("<BBHH", (1 if qos else 0) | (2 if retain else 0), 0, len(tb), len(pb))
        crc = crc32(pb, crc32(tb, crc32(mid))) & 0xFFFFFFFF
        w = self._segs[-1] if self._segs and self._segs[-1][0] == self._wn else None
        if w is None or w[1] + size > self.seg_max:
            w = [self._next, 0, 0]
            self._next += 1
            self._segs.append(w)
            self._wn = w[0]
        self._bound(size)
        try:
            with open(self._seg_path(w[0]), "ab") as f:
                f.write(struct.pack(HEADER, MAGIC, mid[0], 0, len(tb), len(pb), crc))
                f.write(tb)
                f.write(pb)
        except OSError:
            self.errors += 1
            self.dropped += 1
            self._wn = -1  # sealed: a partial record may end it
            w[1] = max(self._size(w[0]), w[1])
            return False
        w[1] += size
        w[2] += 1
        return True

    def _bound(self, size):
        """Delete the oldest segments until `size` more bytes fit (never the last)."""
        total = self.nbytes
        segs = self._segs
        while total + size > self.limit and len(segs) > 1:
            s = segs.pop(0)
            total -= s[1]
            self.dropped += s[2]
            self._remove(self._seg_path(s[0]))
            if s[0] >= self._rn:  # the reader was in it: on to the next one
                self._rn, self._roff = segs[0][0], 0

    # ---- reading -------------------------------------------------------------------

    def read(self):
        """The oldest unread message `(topic, payload, qos, retain)` or None.

        Advances the read cursor in RAM only; `commit()` makes it last. No file
        I/O when nothing is unread.
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
            rec, start, nxt = self._record(s[0], self._roff, s[1])
            self._roff = nxt
            if rec is None:
                continue  # bad record skipped (counted)
            if s[2] > 0:
                s[2] -= 1
            self._unsaved += 1
            self.last = (s[0], start)
            return rec
        return None

    def _record(self, n, off, size):
        """(record or None, its offset, offset after it) at `off` of segment `n`."""
        try:
            with open(self._seg_path(n), "rb") as f:
                r = self._parse(f, off, size)
                if r is not None:
                    return r[0], off, r[1]
                self.errors += 1
                pos = off + 1
                while pos + HEADER_LEN <= size:  # the next valid record, if any
                    f.seek(pos)
                    chunk = f.read(64)
                    if len(chunk) < 2:
                        break
                    j = chunk.find(_MAGIC_BYTES)
                    if j < 0:
                        pos += len(chunk) - 1
                        continue
                    pos += j
                    r = self._parse(f, pos, size)
                    if r is not None:
                        return r[0], pos, r[1]
                    pos += 1
        except (OSError, MemoryError):
            self.errors += 1
        return None, off, size

    def _parse(self, f, off, size):
        """(record, offset after it) if a valid record starts at `off`, else None."""
        f.seek(off)
        h = f.read(HEADER_LEN)
        if len(h) < HEADER_LEN:
            return None
        magic, flags, _, tl, pl, crc = struct.unpack(HEADER, h)
        end = off + HEADER_LEN + tl + pl
        if magic != MAGIC or end > size or HEADER_LEN + tl + pl > MAX_RECORD:
            return None
        body = f.read(tl + pl)
        if len(body) != tl + pl or crc32(body, crc32(h[2:8])) & 0xFFFFFFFF != crc:
            return None
        try:
            topic = body[:tl].decode()
        except UnicodeError:
            return None
        return (topic, body[tl:], flags & 1, bool(flags & 2)), end

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
            self._remove(self._seg_path(segs.pop(0)[0]))
            gone = True
        if upto is None and (not segs or (len(segs) == 1 and segs[0][0] == self._rn and self._roff >= segs[0][1])):
            if segs or gone or self._unsaved:
                self._remove(self._path(CURSOR))
                for s in segs:
                    self._remove(self._seg_path(s[0]))
                self._segs = []
                self._wn = -1
                self._unsaved = 0
            return
        if gone or self._unsaved >= self.persist_every:
            self._write_cursor(n, off)
