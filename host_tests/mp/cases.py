"""Running a `*_cases.py` module's cases under MicroPython (or CPython): each in a
folder of its own, every failure printed with its traceback, then one summary line
`<name> cases on <implementation> failed: N` that the host test looks for."""

import os
import sys


def run(name, cases, folder):
    """Run `cases` (functions of a folder) in folder/0, folder/1, ...; exit 1 if any failed."""
    failed = 0
    for i, case in enumerate(cases):
        d = "%s/%d" % (folder, i)
        os.mkdir(d)
        try:
            case(d)
            print("ok", case.__name__)
        except Exception as e:  # noqa: BLE001
            failed += 1
            print("FAIL", case.__name__, repr(e))
            sys.print_exception(e)  # pyright: ignore[reportAttributeAccessIssue]
    print("%s cases on %s failed: %d" % (name, sys.implementation.name, failed))
    sys.exit(1 if failed else 0)
