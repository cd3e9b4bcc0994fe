"""The meter task: bytes from the board's serial source -> Framer -> JSON body -> hub.

Strategy: `Pipeline` is sans-IO (feed bytes, it publishes accepted telegrams
into the hub and keeps counters), so it runs under the WebAssembly MicroPython
with recorded bytes. Each telegram becomes its JSON body in one pass
(`p1.body`); a telegram that pass declines (a malformed line, DSMR 2/3 layout)
takes the general decoder (`meterrare`: `p1.parse` + `p1.readings`), imported
only then and unloaded again on MicroPython, so its code costs RAM only while
it runs.
`run()` is the thin asyncio shell that reads the source, reopens it with
backoff when it ends, and never lets an error kill the task.

Acceptance: a frame with CRC "ok" is published. "bad" is rejected. "none"
(no CRC, DSMR 2/3 meters) is accepted only while no CRC-bearing telegram has
been seen since boot: once a meter has sent CRCs, a frame without one is
a damaged frame and is rejected and counted.
"""

import asyncio

import log
from aio import sleep_ms
from mem import call
from p1.body import Encoder
from p1.framer import Framer

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_READ = const(512)  # bytes per read from the source
_BACKOFF_MIN_MS = const(500)
_BACKOFF_MAX_MS = const(30000)


class Pipeline:
    """Frames, checks and parses telegrams and publishes the good ones."""

    def __init__(self, hub, size=3072, std_offset=120, on_telegram=None):
        self.hub = hub
        self.framer = Framer(size)
        # The body is written into the framer's buffer: the frame has been copied
        # out (`raw`) by then, and the framer refills it only at its next frame.
        self.encoder = Encoder(0, std_offset, self.framer._buf)
        self.std_offset = std_offset
        self.on_telegram = on_telegram  # called with the Sample (LED blink)
        self.accepted = 0
        self.rejected_crc = 0
        self.rejected_no_crc = 0  # no CRC after the meter had sent CRCs
        self.parse_errors = 0  # telegrams whose parsing raised
        self.line_errors = 0  # malformed lines in accepted telegrams
        self.general = 0  # telegrams the one-pass encoder declined (general decoder)
        self.memory_errors = 0  # telegrams lost to a MemoryError
        self.last_error = ""
        self.seen_crc = False
        self.bytes_in = 0
        self.source = ""
        self.source_state = "idle"
        self.reopens = 0

    def feed(self, data):
        """Take bytes; return how many telegrams were published."""
        self.bytes_in += len(data)
        fr = self.framer
        fr.feed(data)
        n = 0
        while True:
            frame = fr.next_frame()
            if frame is None:
                return n
            n += self._frame(frame, fr.crc)

    def end(self):
        """End of stream: finish a telegram whose trailer lacked its LF."""
        frame = self.framer.end()
        if frame is None:
            return 0
        return self._frame(frame, self.framer.crc)

    def _frame(self, frame, crc):
        if crc == "ok":
            self.seen_crc = True
        elif crc == "bad":
            self.rejected_crc += 1
            return 0
        elif self.seen_crc:
            self.rejected_no_crc += 1
            return 0
        try:
            raw = bytes(frame)
            got = self.encoder.encode(raw)
            if got is None:
                got = call("meterrare", "general", self, raw, crc)
        except MemoryError:  # this telegram is lost; the heap recovers, the meter goes on
            self.memory_errors += 1
            self.last_error = "MemoryError"
            log.oom("meter")
            return 0
        except Exception as e:  # noqa: BLE001 - a parser bug must not stop the meter
            self.parse_errors += 1
            self.last_error = "%s: %s" % (type(e).__name__, e)
            return 0
        self.accepted += 1
        s = self.hub.publish(got[0], got[1], raw)
        if self.on_telegram is not None:
            self.on_telegram(s)
        return 1

    def status(self):
        s = self.hub.sample
        out = {
            "source": self.source,
            "state": self.source_state,
            "reopens": self.reopens,
            "bytes": self.bytes_in,
            "accepted": self.accepted,
            "rejected_crc": self.rejected_crc,
            "rejected_no_crc": self.rejected_no_crc,
            "parse_errors": self.parse_errors,
            "line_errors": self.line_errors,
            "general_decoder": self.general,
            "memory_errors": self.memory_errors,
            "last_error": self.last_error,
            "seen_crc": self.seen_crc,
            "last_telegram_age_s": None if s is None else s.age_ms() // 1000,
        }
        c = self.framer.counters
        for k in c:
            out["framer_" + k] = c[k]
        return out


async def run(board, pipeline, source=""):
    """Read the meter forever: reopen the source with backoff when it ends."""
    pipeline.source = source or "uart"
    board.data_request(True)
    backoff = _BACKOFF_MIN_MS
    while True:
        src = None
        try:
            src = board.open_meter(source)
            pipeline.source_state = "open"
            while True:
                try:
                    data = await src.read(_READ)
                except MemoryError:  # no room for the read's buffer: count it, keep the source
                    pipeline.memory_errors += 1
                    log.oom("meter")
                    await sleep_ms(100)
                    continue
                if not data:
                    break
                backoff = _BACKOFF_MIN_MS
                if pipeline.feed(data):
                    # A read that returns buffered bytes does not yield: let the
                    # subscribers (raw TCP, SSE, MQTT) take this telegram before
                    # the next one, so a burst cannot overflow their queues.
                    await asyncio.sleep(0)
            pipeline.end()
            pipeline.source_state = "ended"
            if not src.reconnect:
                log.info("meter: %s ended" % pipeline.source)
                return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - log, wait, retry
            pipeline.source_state = "error"
            if isinstance(e, MemoryError):  # opening the source (a connection, its buffers)
                pipeline.last_error = "source: MemoryError"
                pipeline.memory_errors += 1
                log.oom("meter")
            else:
                pipeline.last_error = "source: %s" % e
                log.warn("meter: %s: %s" % (pipeline.source, e))
        finally:
            if src is not None:
                src.close()
        pipeline.reopens += 1
        await sleep_ms(backoff)
        backoff = min(backoff * 2, _BACKOFF_MAX_MS)
