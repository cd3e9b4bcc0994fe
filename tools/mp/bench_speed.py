"""Telegram bytes -> JSON body under MicroPython: time per telegram of three decoders
over the same stream, fed in 512-byte reads as the meter task reads its source.

    micropython tools/mp/bench_speed.py CODE_DIR N FILE [FILE ...]

CODE_DIR is a device build (the Unix port's: -march x64, so the CRC's viper
code runs as it does on the ESP32). N telegrams, the FILEs cycled.

- ours: meter.Pipeline.feed (Framer, CRC, p1.body.Encoder, the raw copy and
  hub.publish), what the device runs;
- general: Framer + p1.parse + p1.readings + p1.jsonout.dumps, the pipeline
  as it was before the one-pass encoder (and the path for odd telegrams now);
- baseline: tools/mp/bench_regex.py, a regex-per-line decoder with a bitwise CRC.

First checks that all three give the same body for every FILE (else exits 1),
then prints `crc viper|portable` (the CRC code in use) and `NAME <best us per
telegram of 5 runs>` per decoder, the runs of the three interleaved.
"""

import gc
import sys
import time

code_dir, n = sys.argv[1], int(sys.argv[2])
files = sys.argv[3:]
sys.path[:0] = [code_dir]
sys.path.append(sys.argv[0].rsplit("/", 1)[0])

import bench_regex  # noqa: E402
from hub import Hub  # noqa: E402
from meter import Pipeline  # noqa: E402
from p1.framer import Framer  # noqa: E402
from p1.jsonout import dumps  # noqa: E402
from p1.parse import parse  # noqa: E402
from p1.readings import readings  # noqa: E402

_READ = 512
ROUNDS = 5


def chunked(data):
    return [data[i : i + _READ] for i in range(0, len(data), _READ)]


def ours(chunks, out=None):
    hub = Hub()
    p = Pipeline(hub)
    for c in chunks:
        if p.feed(c) and out is not None:
            out.append(hub.sample.body)
    return p.accepted


def general(chunks, out=None):
    fr = Framer(3072)
    k = 0
    for c in chunks:
        fr.feed(c)
        while True:
            f = fr.next_frame()
            if f is None:
                break
            if fr.crc == "ok":
                body = dumps(readings(parse(f, "ok", 120))).encode()
                k += 1
                if out is not None:
                    out.append(body)
    return k


def baseline(chunks, out=None):
    d = bench_regex.Decoder()
    k = 0
    for c in chunks:
        for body in d.feed(c):
            k += 1
            if out is not None:
                out.append(body)
    return k


RUNS = (("ours", ours), ("general", general), ("baseline", baseline))

tel = []
for f in files:
    with open(f, "rb") as fh:
        tel.append(fh.read())
for t in tel:
    bodies = []
    for name, fn in RUNS:
        got = []
        fn(chunked(t), got)
        bodies.append(got)
    if not (len(bodies[0]) == 1 and bodies[0] == bodies[1] == bodies[2]):
        print("DIFFERENT", [b[:1] for b in bodies])
        sys.exit(1)

print("crc", "viper" if "p1._crc_viper" in sys.modules else "portable")
chunks = chunked(b"".join([tel[i % len(tel)] for i in range(n)]))
best = {}
for _ in range(ROUNDS):  # interleaved, so that a busy moment of the machine hits all three alike
    for name, fn in RUNS:
        gc.collect()
        t0 = time.ticks_us()
        k = fn(chunks)
        dt = time.ticks_diff(time.ticks_us(), t0)
        if k != n:
            print("COUNT", name, k, n)
            sys.exit(1)
        if name not in best or dt < best[name]:
            best[name] = dt
for name, fn in RUNS:
    print(name, best[name] / n)
