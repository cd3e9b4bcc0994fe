#!/usr/bin/env python3
"""p1tool: host-side commands of the P1/HAN reader.

  p1tool.py decode [FILE ...]   recorded telegrams -> JSON Lines (stdin without FILE)
  p1tool.py simulate [...]      meter simulator (see `simulate --help`)
  p1tool.py run [...]           the firmware on the host board against the simulator
  p1tool.py update URL BUNDLE   OTA update of a dongle (see `update --help`)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tools"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "decode":
        from p1.__main__ import main as decode_main

        return decode_main(["decode", *rest])
    if cmd == "simulate":
        from simulate import main as simulate_main

        return simulate_main(rest)
    if cmd == "run":
        from run_host import main as run_main

        return run_main(rest)
    if cmd == "update":
        from update_client import main as update_main

        return update_main(rest)
    print(f"p1tool: unknown command {cmd!r}\n\n{__doc__.strip()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
