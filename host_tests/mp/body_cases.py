"""Run under MicroPython (either port): `body_cases.py CASES_FILE`.

Each line of CASES_FILE is `<offset> <telegram hex> <general body hex>` as CPython
computed it. For every case, MicroPython's general path must give the same body,
and the device path (`p1.body`) either declines (None) or gives it too.
Prints one summary line; exits 1 on the first difference.
"""

import sys
from binascii import hexlify, unhexlify

from p1.body import Encoder
from p1.jsonout import dumps
from p1.parse import parse
from p1.readings import readings

took = declined = 0
encoders = {}
with open(sys.argv[1]) as f:
    for n, line in enumerate(f):
        off, raw, want = line.split()
        off = int(off)
        raw = unhexlify(raw)
        want = unhexlify(want)
        enc = encoders.get(off)
        if enc is None:
            enc = encoders[off] = Encoder(3072, off)
        gen = dumps(readings(parse(raw, "ok", off))).encode()
        if gen != want:
            print("case %d: general path differs from CPython\n %s\n %s" % (n, gen, want))
            sys.exit(1)
        got = enc.encode(raw)
        if got is None:
            declined += 1
        elif got[0] != want:
            print("case %d: device path differs\n %s\n %s\n raw %s" % (n, got[0], want, hexlify(raw)))
            sys.exit(1)
        else:
            took += 1
print("%s: %d cases, device path took %d, declined %d" % (sys.implementation.name, took + declined, took, declined))
