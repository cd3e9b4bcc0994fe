# Runs under MicroPython (node tools/mp/run.mjs): proves the runner works.
import json
import sys

from p1.crc import crc16

failures = 0


def check(name, ok):
    global failures
    print(("ok   " if ok else "FAIL ") + name)
    if not ok:
        failures += 1


check("running on MicroPython", sys.implementation.name == "micropython")
check("crc16 check value", crc16(b"123456789") == 0xBB3D)
d = {"a": 1, "b": [1, 2]}
check("dict", d["a"] == 1 and len(d) == 2)
check("json round trip", json.loads(json.dumps(d)) == d)
check("argv[0] is this script", sys.argv[0].endswith("test_mp_smoke.py"))
print("%d passed, %d failed" % (5 - failures, failures))
sys.exit(1 if failures else 0)
