"""Boot-time board work: find and read the board file, pick the board class,
record the boot. Imported by `board.load()` and `Board.record_boot()` and
dropped again (`mem.unload`): none of it is needed once the board runs.

A board file is `boards/<name>.json` (`/boards` on the device). A missing or
broken one gives fallback pins plus errors shown in status; only the keys the
firmware reads are kept (no descriptions in RAM).
"""

import json

from fsutil import exists, read, write_atomic

_MAX_BOARD_FILE = 4096

# Used when the board file is missing or broken: UART2 RX on GPIO16 of a
# WROOM DevKit, no other pins (safe on every chip), reduced power.
FALLBACK = {
    "name": "fallback",
    "chip": "esp32",
    "uart": {
        "id": 2,
        "rx": 16,
        "rx_invert": True,
        "rxbuf": 4096,
        "baud": 115200,
        "bits": 8,
        "parity": None,
        "stop": 1,
    },
    "data_request": None,
    "led": None,
    "relays": [],
    "cpu_mhz": 80,
    "wifi_txpower_dbm": 8.5,
    "start_delay_ms": 1500,
    "watchdog_s": 60,  # on unless a board file says 0 (the host board does)
    "storage_dir": "/",
}


def _dir_of(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else ("/" if i == 0 else "")


def board_dirs():
    """Where board files are looked for: next to the code (/app/boards on the device,
    installed from a bundle), /boards (an older flat deploy), repo/boards on a host."""
    here = _dir_of(__file__)
    out = [here + "/boards"] if here and here != "/" else []
    out.append("/boards")
    if here:
        out.append(here + "/../boards")
    out.append("boards")
    return out


def read_spec(name, dirs=None):
    """(spec dict, errors) for board `name`; FALLBACK (or host) on any trouble."""
    errors = []
    if not isinstance(name, str) or not name or "/" in name or "." in name:
        errors.append("board: invalid name %r" % (name,))
        name = "host" if _is_cpython() else "fallback"
    for d in dirs or board_dirs():
        path = d + "/" + name + ".json"
        if not exists(path):
            continue
        try:
            with open(path) as f:
                text = f.read(_MAX_BOARD_FILE + 1)
            if len(text) > _MAX_BOARD_FILE:
                raise ValueError("file too large")
            spec = json.loads(text)
            if not isinstance(spec, dict):
                raise ValueError("not an object")
        except Exception as e:  # noqa: BLE001 - a bad file must not stop the boot
            errors.append("board: %s: %s" % (path, e))
            break
        out = {}  # only the keys the firmware reads: no descriptions kept in RAM
        for k in FALLBACK:
            if k in spec:
                out[k] = spec[k]
            else:
                out[k] = FALLBACK[k]
                if k != "name":
                    errors.append("board: %s lacks %r, using %r" % (path, k, FALLBACK[k]))
        return out, errors
    if name != "fallback":
        errors.append("board: no file for %r, using fallback pins" % name)
    spec = dict(FALLBACK)
    if name == "host" or _is_cpython():
        spec["chip"] = "host"
        spec["cpu_mhz"] = None
        spec["wifi_txpower_dbm"] = None
        spec["start_delay_ms"] = 0
        spec["storage_dir"] = ""
        spec["name"] = "host"
    return spec, errors


def _is_cpython():
    """True off the device: CPython, or MicroPython's Unix port (its `machine` has no UART)."""
    try:
        import machine

        return not hasattr(machine, "UART")
    except ImportError:
        return True


def load(name, dirs=None):
    """The board named `name` (host -> HostBoard). Never raises."""
    spec, errors = read_spec(name, dirs)
    if spec.get("chip") == "host":
        from boards_host import HostBoard

        return HostBoard(spec, errors)
    from espboard import EspBoard

    try:
        return EspBoard(spec, errors)
    except ImportError:  # an ESP board file asked for on CPython
        from boards_host import HostBoard

        errors.append("board: %s needs machine; running as host" % spec.get("name"))
        return HostBoard(spec, errors)


def record_boot(board):
    """Increment and persist the boot counter; take a recorded reset reason. Never raises."""
    n = 0
    try:
        info = json.loads(read(board.path("bootinfo.json"), 512)[0] or b"")  # (missing: ValueError)
        n = int(info.get("boots", 0))
        board.reset_reason = str(info.get("reset_reason") or "")
    except Exception:  # noqa: BLE001 - missing or broken: start at 0
        n = 0
    n += 1
    board.boot_count = n
    try:
        write_bootinfo(board, n, "")
    except MemoryError as e:
        board.errors.append("bootinfo: %r" % e)
    return n


def write_bootinfo(board, n, reason):
    """bootinfo.json: boot count, the hardware's reset cause, and the reason our
    firmware gives for the reset it is about to do (or "")."""
    info = {"boots": n, "last_reset": board.reset_cause(), "reset_reason": reason}
    try:
        write_atomic(board.path("bootinfo.json"), json.dumps(info))
    except MemoryError:  # the caller tries again (a reset's reason must not get lost)
        raise
    except Exception as e:  # noqa: BLE001 - read-only flash must not stop the boot
        board.errors.append("bootinfo: %s" % e)
