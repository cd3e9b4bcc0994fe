"""Bytes in, telegram frames out: a sans-IO streaming state machine.

Strategy: three states. HUNT skips bytes until `/`. BODY copies whole runs of
bytes up to `!` into one preallocated buffer with a single slice assignment
per chunk, so a trickle of single bytes and a whole file cost the same per
byte and nothing is allocated per byte. TRAIL takes the few bytes after `!`
(0-4 hex digits, CR) up to LF and judges the CRC, computed over the buffer
in one call. A `/` inside BODY means the meter started over: the cut
telegram is dropped and counted, and the new one is framed. A telegram
longer than the buffer is dropped and counted; the heap never grows.

Framing is by bytes only, never by timing: Landis+Gyr E360 meters pause
inside a telegram, and readers that end a frame on a read timeout get CRC
errors. Any stall timeout belongs to the runtime.

Use: `feed(data)`, then call `next_frame()` until it returns None. The
returned memoryview points into the buffer and is valid until the next call.
"""

from p1.crc import crc16

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_HUNT = const(0)
_BODY = const(1)
_TRAIL = const(2)
_SLASH = const(0x2F)
_LF = const(0x0A)


class Framer:
    """Frames P1 telegrams from a byte stream into one fixed buffer."""

    max_trailer = 6  # bytes allowed between `!` and LF: 4 hex digits + CR + slack

    def __init__(self, size=3072):
        self.size = size
        self._buf = bytearray(size)
        self._n = 0
        self._state = _HUNT
        self._trail = 0  # buffer index just after `!`
        self._data = b""
        self._view = memoryview(self._data)
        self._pos = 0
        self.crc = None  # "ok" | "bad" | "none" for the frame last returned
        self.counters = {
            "telegrams": 0,  # complete frames returned, whatever their CRC
            "crc_errors": 0,
            "no_crc": 0,
            "truncated": 0,  # cut off by a new `/` or by the end of the stream
            "oversized": 0,
            "skipped_bytes": 0,  # noise outside any telegram
        }

    def feed(self, data):
        """Queue bytes for `next_frame()`; the caller keeps ownership (bytes are not
        copied; a memoryview is, since framing needs `find()`).

        Raises ValueError if the previous data has not been drained yet.
        """
        if self._pos < len(self._data):
            raise ValueError("feed() before next_frame() returned None")
        if isinstance(data, memoryview):
            data = bytes(data)
        self._data = data
        self._view = memoryview(data)  # slices of it copy nothing
        self._pos = 0

    def next_frame(self):
        """Return the next complete telegram (memoryview) or None for more data."""
        data = self._data
        pos = self._pos
        end = len(data)
        while pos < end:
            state = self._state
            if state == _HUNT:
                i = data.find(b"/", pos)
                if i < 0:
                    self.counters["skipped_bytes"] += end - pos
                    pos = end
                    break
                self.counters["skipped_bytes"] += i - pos
                self._buf[0] = _SLASH
                self._n = 1
                self._state = _BODY
                pos = i + 1
            elif state == _BODY:
                j = data.find(b"!", pos)
                stop = end if j < 0 else j + 1
                k = data.find(b"/", pos, stop)
                if k >= 0:  # a new telegram began before this one ended
                    self.counters["truncated"] += 1
                    self._state = _HUNT
                    pos = k
                    continue
                n = self._n
                m = n + stop - pos
                if m > self.size:
                    self.counters["oversized"] += 1
                    self._state = _HUNT
                    # What did not fit is hunted through (skipped bytes): counted the
                    # same however the bytes arrive (found by test_fuzz.py)
                    pos += self.size - n
                    continue
                self._buf[n:m] = self._view[pos:stop]
                self._n = m
                pos = stop
                if j >= 0:
                    self._trail = m
                    self._state = _TRAIL
            else:  # _TRAIL
                b = data[pos]
                if b == _SLASH:  # next telegram without our LF: finish this one
                    self._pos = pos
                    return self._finish()
                if self._n >= self.size:
                    self.counters["oversized"] += 1
                    self._state = _HUNT
                    continue
                self._buf[self._n] = b
                self._n += 1
                pos += 1
                if b == _LF or self._n - self._trail > self.max_trailer:
                    self._pos = pos
                    return self._finish()
        self._pos = pos
        return None

    def end(self):
        """End of stream: return a frame whose trailer lacked its LF, or None."""
        self._pos = len(self._data)
        if self._state == _TRAIL:
            return self._finish()
        if self._state == _BODY:
            self.counters["truncated"] += 1
            self._state = _HUNT
        return None

    def _finish(self):
        self._state = _HUNT
        buf = self._buf
        n = self._n
        t = self._trail
        e = n
        while e > t and buf[e - 1] in b"\r\n":
            e -= 1
        c = self.counters
        c["telegrams"] += 1
        if e == t:
            self.crc = "none"
            c["no_crc"] += 1
        else:
            h = bytes(buf[t:e])  # 1-4 hex digits
            ok = e - t <= 4 and not h.strip(b"0123456789ABCDEFabcdef") and int(h, 16) == crc16(memoryview(buf)[:t])
            self.crc = "ok" if ok else "bad"
            if not ok:
                c["crc_errors"] += 1
        return memoryview(buf)[:n]
