# Runs under MicroPython (node tools/mp/run.mjs): the flash spool cases of
# spool_cases.py (the same ones host_tests/test_mqtt_spool.py runs on CPython),
# each in an empty dir under /tmp of the port's in-memory file system.
import os
import sys

import spool_cases

failures = 0
print("on MicroPython:", sys.implementation.name == "micropython")
if sys.implementation.name != "micropython":
    failures += 1
try:
    os.mkdir("/tmp")
except OSError:
    pass
for i, case in enumerate(spool_cases.CASES):
    d = "/tmp/spool-case-%d" % i
    os.mkdir(d)
    try:
        case(d)
        print("ok   " + case.__name__)
    except Exception as e:
        failures += 1
        print("FAIL " + case.__name__)
        sys.print_exception(e)  # type: ignore[attr-defined]
print("%d passed, %d failed" % (len(spool_cases.CASES) - failures, failures))
sys.exit(1 if failures else 0)
