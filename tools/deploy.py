#!/usr/bin/env python3
"""Put a device build onto a board with mpremote (`make deploy`, `make deploy-romfs`).

    python tools/deploy.py --port PORT BUILD_DIR
        the .mpy files onto the board's filesystem, then a reset; works on
        every stock MicroPython image
    python tools/deploy.py --port PORT --bundle BUNDLE
        the same from a bundle (tools/bundle.py, `make deploy`): every file
        checked against the manifest's SHA-256 first, refused (nothing
        changed) if one differs; the code into /app (replacing it, and any
        update state: docs/UPDATE.md), boot.py and main.py at /;
        firmware/config.json goes along if there is one
    python tools/deploy.py --port PORT --romfs IMAGE BUILD_DIR
        IMAGE (tools/romfs.py) into the board's "romfs" partition, where the
        code runs from flash; boot.py, main.py, the board file and config.json
        onto the filesystem; filesystem copies of the code (an earlier plain
        deploy) removed, since they would come first on sys.path; a reset.
        First asks the board (`mpremote romfs query`) and refuses, changing
        nothing, when its MicroPython has no ROMFS or the partition is missing
        or too small: the stock ESP32 images have neither (docs/DEVICE.md).
    python tools/deploy.py --port PORT --frozen BUILD_DIR
        for a MicroPython image with the firmware frozen in (tools/freeze/manifest.py):
        only boot.py, main.py, the board file, config.json and web/static onto
        the filesystem, filesystem copies of the code removed, a reset.

--dry-run prints the mpremote commands instead (the ROMFS check included).
Exit status: 0 done, 2 refused (nothing changed), 1 an mpremote step failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from romfs import LEFT_OUT, ON_FILESYSTEM, image_files  # noqa: E402

REFUSED = 2

# What each answer of `mpremote romfs query` (mpremote 1.29, commands.py) means here.
NOT_ENABLED = """\
deploy-romfs: refused, nothing was changed on the board.
  The board's MicroPython has no ROMFS support (mpremote romfs query: "{answer}").
  The stock ESP32 images (ESP32_GENERIC, _C3, _S2, _S3; MicroPython 1.25 up to 1.29)
  are built without MICROPY_VFS_ROM and their partition table has no "romfs" partition.
  ROMFS needs a MicroPython image of your own, built with MICROPY_VFS_ROM=1 and a
  partition table with a "romfs" data partition (tools/partitions.py); freezing the
  modules into your own image (tools/freeze/manifest.py) saves RAM the same way.
  See docs/DEVICE.md. On a stock image use `make deploy BOARD=...` (.mpy files)."""
NO_PARTITION = """\
deploy-romfs: refused, nothing was changed on the board.
  The board's MicroPython supports ROMFS but has no "romfs" partition
  (mpremote romfs query: "{answer}").
  Flash an image built with a partition table that has one (tools/partitions.py,
  docs/DEVICE.md), or use `make deploy BOARD=...`."""
TOO_SMALL = """\
deploy-romfs: refused, nothing was changed on the board.
  The image is {image} bytes, the board's ROMFS partition {size} bytes.
  Build MicroPython with a larger "romfs" partition (tools/partitions.py, docs/DEVICE.md)."""


def mpremote_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "mpremote"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "mpremote"]


def romfs_verdict(query_output: str, image_size: int) -> tuple[bool, str]:
    """(ok, message) for an image of `image_size` bytes, from `mpremote romfs query`'s output."""
    for line in query_output.splitlines():
        line = line.strip()
        if line == "ROMFS is not enabled on this device":
            return False, NOT_ENABLED.format(answer=line)
        if line == "No ROMFS partitions available" or line.endswith("partition not found on device"):
            return False, NO_PARTITION.format(answer=line)
    m = re.search(r"ROMFS0 partition has size (\d+) bytes", query_output)
    if m is None:
        return False, "deploy-romfs: refused: cannot read `mpremote romfs query`'s answer:\n" + query_output
    size = int(m.group(1))
    if image_size > size:
        return False, TOO_SMALL.format(image=image_size, size=size)
    return True, f"deploy-romfs: image {image_size} bytes, ROMFS partition {size} bytes"


def code_entries(build_dir: Path) -> list[str]:
    """Top-level names of the build that go onto the filesystem in a plain deploy."""
    return sorted(p.name for p in build_dir.iterdir() if p.name not in LEFT_OUT)


def fs_entries(build_dir: Path) -> list[str]:
    """What a ROMFS deploy still copies onto the filesystem."""
    return [n for n in ON_FILESYSTEM if (build_dir / n).exists()]


# what a bundle deploy replaces: the code folder and otaboot's (docs/UPDATE.md)
BUNDLE_OWNS = ["app", "prev", "stage", "bad", "update.json", "update.json.tmp", "update.json.bak"]


def stale_paths(build_dir: Path) -> list[str]:
    """Filesystem copies of the image's files that a plain deploy left at / (shadowing /rom)."""
    top = {f.split("/")[0] for f in image_files(build_dir)} - {"lib"}
    lib = {"/".join(f.split("/")[:2]) for f in image_files(build_dir) if f.startswith("lib/")}
    # (and a bundle deploy's /app, which boot.py would put first on sys.path: docs/UPDATE.md)
    return sorted(top | lib | {"boot.mpy", "main.mpy"} | set(BUNDLE_OWNS))


# Run on the board: remove files and folders (recursively) that exist.
_REMOVE = """import os
def _rm(p):
    try:
        if os.stat(p)[0] & 0x4000:
            for n in os.listdir(p):
                _rm(p + "/" + n)
            os.rmdir(p)
        else:
            os.remove(p)
    except OSError:
        pass
for _p in {paths!r}:
    _rm(_p)
"""


class Runner:
    def __init__(self, port: str, dry_run: bool):
        self.port, self.dry_run = port, dry_run

    def __call__(self, args: list[str], cwd: Path | None = None, query: bool = False) -> str:
        """Run mpremote; exits on failure. query: return its output (stdout and stderr)."""
        cmd = [*mpremote_cmd(), "connect", self.port, *args]
        shown = " ".join("'<%d lines of Python>'" % a.count("\n") if "\n" in a else shlex.quote(a) for a in cmd)
        print(("(cd %s && %s)" % (shlex.quote(str(cwd)), shown)) if cwd else shown, flush=True)
        if self.dry_run:
            return ""
        r = subprocess.run(cmd, cwd=cwd, text=True, capture_output=query)
        if query:
            sys.stdout.write(r.stdout + r.stderr)
            return r.stdout + r.stderr  # a failed query is judged by its words
        if r.returncode != 0:
            sys.exit(f"deploy: mpremote failed (exit {r.returncode})")
        return ""


def deploy_mpy(run: Runner, build_dir: Path) -> None:
    """A build's files at / (flat: no updates); a bundle deploy's /app would shadow them."""
    remove = _REMOVE.format(paths=BUNDLE_OWNS)
    run(["exec", remove, "+", "fs", "cp", "-r", *code_entries(build_dir), ":", "+", "reset"], cwd=build_dir)


def deploy_romfs(run: Runner, build_dir: Path, image: Path) -> int:
    size = image.stat().st_size
    if run.dry_run:
        run(["romfs", "query"], query=True)
        print(f"(then: refuse unless a ROMFS partition of at least {size} bytes exists)")
    else:
        ok, message = romfs_verdict(run(["romfs", "query"], query=True), size)
        print(message, file=sys.stdout if ok else sys.stderr)
        if not ok:
            return REFUSED
    run(["romfs", "deploy", str(image.resolve())])
    run(
        ["exec", _REMOVE.format(paths=stale_paths(build_dir)), "+",
         "fs", "cp", "-r", *fs_entries(build_dir), ":", "+", "reset"],
        cwd=build_dir,
    )  # fmt: skip
    return 0


def deploy_frozen(run: Runner, build_dir: Path) -> None:
    # Frozen, web/api.py finds its files at web/static relative to / (its __file__
    # is "web/api.py"): everything else of the build is in the image.
    stale = [p for p in stale_paths(build_dir) if p != "web"]
    stale += sorted(p.relative_to(build_dir).as_posix() for p in (build_dir / "web").glob("*.mpy"))
    remove = _REMOVE.format(paths=stale) + "try:\n    os.mkdir('web')\nexcept OSError:\n    pass\n"
    args = ["exec", remove, "+", "fs", "cp", "-r", *fs_entries(build_dir), ":"]
    if (build_dir / "web" / "static").is_dir():
        args += ["+", "fs", "cp", "-r", "web/static", ":web/"]
    run([*args, "+", "reset"], cwd=build_dir)


SOURCE_TOO = ("boot.py", "main.py")


def deploy_bundle(run: Runner, path: Path) -> int:
    """Check and unpack the bundle, add the developer's config, copy it all."""
    import bundle
    from build_device import device_config

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        try:
            man = bundle.unpack(path, d)
        except (ValueError, OSError) as e:
            print(f"deploy: refused, nothing was changed on the board: {e}", file=sys.stderr)
            return REFUSED
        print(f"deploy: {path.name}: {man['board']} {man['version']}, {len(man['files'])} files, SHA-256 checked")
        # the code into /app (an update switches that folder, docs/UPDATE.md); boot.py and
        # main.py, which MicroPython runs from /, at /
        (d / "app").mkdir()
        for p in sorted(d.iterdir()):
            if p.name != "app" and p.name not in SOURCE_TOO:
                p.rename(d / "app" / p.name)
        cfg = device_config(man["board"])
        if cfg is not None:
            (d / "config.json").write_text(cfg)
        # a fresh install: the old code and any update state go first
        remove = _REMOVE.format(paths=BUNDLE_OWNS)
        run(["exec", remove, "+", "fs", "cp", "-r", *code_entries(d), ":", "+", "reset"], cwd=d)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir", nargs="?", help="a device build (tools/build_device.py --board ...)")
    ap.add_argument("--bundle", help="deploy this bundle (tools/bundle.py) instead of a build")
    ap.add_argument("--port", default=os.environ.get("PORT", "/dev/ttyUSB0"), help="the board's serial port")
    ap.add_argument("--romfs", metavar="IMAGE", help="deploy the code as this ROMFS image (tools/romfs.py)")
    ap.add_argument("--frozen", action="store_true", help="for an image with the firmware frozen in")
    ap.add_argument("--dry-run", action="store_true", help="print the mpremote commands only")
    args = ap.parse_args(argv)
    if args.bundle:
        if args.build_dir or args.romfs or args.frozen:
            sys.exit("deploy: --bundle takes no build folder, --romfs or --frozen")
        return deploy_bundle(Runner(args.port, args.dry_run), Path(args.bundle))
    if not args.build_dir:
        sys.exit("deploy: a build folder or --bundle is needed")
    build_dir = Path(args.build_dir).resolve()
    if not (build_dir / "app.mpy").is_file():
        sys.exit(f"deploy: {build_dir} is not a device build; run `make build BOARD=...`")
    run = Runner(args.port, args.dry_run)
    if args.romfs and args.frozen:
        sys.exit("deploy: --romfs or --frozen, not both")
    if args.romfs:
        return deploy_romfs(run, build_dir, Path(args.romfs))
    if args.frozen:
        deploy_frozen(run, build_dir)
        return 0
    deploy_mpy(run, build_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
