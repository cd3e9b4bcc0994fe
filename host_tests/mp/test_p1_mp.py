"""The parser under real MicroPython: framing, exact values, bad input, heap.

Plain script (runs on CPython too); exits 1 on the first failed check.
Telegrams come from ../telegrams (copied into the MicroPython FS by the runner).
"""

import gc
import os
import sys

from p1.framer import Framer
from p1.jsonout import dumps
from p1.parse import parse
from p1.readings import readings

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
TG = HERE + "/../telegrams"
BAD_CRC = ("se-aidon-6534-02-edited.txt", "fi-aidon-7534-02.txt", "lu-smarty-01.txt")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


def read(name):
    with open(TG + "/" + name, "rb") as f:
        return f.read()


def frames(data, chunk, size=3072):
    fr = Framer(size)
    out = []
    for i in range(0, len(data), chunk):
        fr.feed(data[i : i + chunk])
        while True:
            f = fr.next_frame()
            if f is None:
                break
            out.append((bytes(f), fr.crc))
    f = fr.end()
    if f is not None:
        out.append((bytes(f), fr.crc))
    return out, fr.counters


names = sorted(n for n in os.listdir(TG) if n.endswith(".txt"))
check(len(names) >= 17, "recorded telegrams present")
stream = b"".join(read(n) for n in names)

# 1. Every recorded telegram, every chunking, the right CRC verdict.
whole, counters = frames(stream, len(stream))
check(len(whole) == len(names), "one frame per recorded telegram")
for n, (raw, crc) in zip(names, whole):
    check(raw == read(n), "frame bytes of " + n)
    check(crc == ("bad" if n in BAD_CRC else "ok"), "crc of " + n)
for chunk in (1, 3, 7, 64, 500):
    check(frames(stream, chunk) == (whole, counters), "chunk size %d" % chunk)

# 2. Bad input: noise, a cut telegram, oversize, no CRC.
e360 = read("se-lg-e360-01.txt")
got, c = frames(b"\x00\xffjunk" + e360[:300] + e360 + b"tail", 5)
check([g[0] for g in got] == [e360], "resync after a cut telegram")
check(c["truncated"] == 1 and c["skipped_bytes"] == 10, "cut and noise counted: %r" % (c,))
got, c = frames(e360 * 2, 100, size=512)
check(got == [] and c["oversized"] == 2, "oversized dropped: %r" % (c,))
old = e360[: e360.index(b"!") + 1] + b"\r\n"
check(frames(old, 9)[0] == [(old, "none")], "telegram without CRC")

# 3. Exact values, also where a 32-bit float would lose digits.
r = readings(parse(e360, "ok", 120))
check(dumps(r["energy_import_kwh"]) == "896.020", "energy exact")
check(r["timestamp"] == "2021-02-22T16:19:00+02:00", "time stamp with W offset")
check(str(r["l1_voltage_v"]) == "230.1", "voltage exact")
big = parse(b"/X\r\n\r\n1-0:1.8.0(123456.789*kWh)\r\n1-0:2.8.0(99999999.999*kWh)\r\n!", "none")
rb = readings(big)
check(
    dumps(rb) == '{"timestamp": null, "meter": "X", "energy_import_kwh": 123456.789, '
    '"energy_export_kwh": 99999999.999}',
    "large counters exact: " + dumps(rb),
)
at = readings(parse(read("at-sagemcom-t210dr-01.txt"), "ok", 60))
check(str(at["energy_import_kwh"]) == "6545.766", "Wh -> kWh exact")
try:
    dumps({"x": 0.5})
    check(False, "floats refused")
except TypeError:
    pass

# 4. A malformed line is reported with its text; the rest is kept.
t = parse(e360.replace(b"(230.1*V)", b"(23x.1*V)"), "bad", 120)
check(t.errors == [("1-0:32.7.0(23x.1*V)", "bad number")], "error reported: %r" % (t.errors,))
check("1-0:52.7.0" in t.objects and "1-0:32.7.0" not in t.objects, "rest kept")

# 5. Heap: bytes allocated per telegram (framer + parse + readings + JSON), flat over the run.
fr = Framer(3072)
per = []
for i in range(60):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    fr.feed(e360)
    f = fr.next_frame()
    body = dumps(readings(parse(f, fr.crc, 120)))
    while fr.next_frame() is not None:
        pass
    per.append(gc.mem_alloc() - a0)
    gc.enable()
    del f, body
frame_only = []
for i in range(20):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    fr.feed(e360)
    while fr.next_frame() is not None:
        pass
    frame_only.append(gc.mem_alloc() - a0)
    gc.enable()
first, last = per[1], per[-1]
print(
    "heap: framer buffer 3072 B preallocated; per telegram (%d B E360): framer %d B, "
    "framer+parse+readings+JSON %d B at #2, %d B at #60, max %d B"
    % (len(e360), frame_only[-1], first, last, max(per[1:]))
)
check(max(per[1:]) - min(per[1:]) <= 256, "allocation per telegram is flat: %r" % (per,))
check(frame_only[-1] <= 256, "framer allocates almost nothing: %r" % (frame_only,))

print("p1 under %s: %d failures" % (sys.implementation.name, len(failures)))
sys.exit(1 if failures else 0)
