"""A MicroPython board on a serial port, without hardware, for mpremote.

`PtyBoard(micropython, fs_dir)` runs the Unix port's REPL on a pseudo-terminal and
bridges it to a second one whose path (`board.port`) mpremote opens like
/dev/ttyUSB0. The board's filesystem is the folder `fs_dir`, mounted at / (a
`vfs.VfsPosix` in place of the host's root, current directory /), so
`mpremote fs cp x :` lands in fs_dir as it lands in / on a board. A restart of the board is a fresh interpreter:
when the REPL exits (Ctrl-D in the raw REPL, which is how mpremote soft-resets,
or `machine.reset()`), the bridge prints "MPY: soft reboot" as a board does,
starts a new one and puts it back in the raw REPL.

By default it has no `vfs.rom_ioctl`, like the stock ESP32 images (so `mpremote
romfs query` answers "ROMFS is not enabled on this device"). With
`romfs=SIZE` it is a MicroPython built with ROMFS instead: `vfs.rom_ioctl` serves
a "romfs" partition of SIZE bytes (0: none) the way ports/esp32/esp32_partition.c
does (one segment, a block device of 4096-byte blocks with erase and
writeblocks(block, buf, offset), readable as a buffer), kept in a file beside
fs_dir across restarts, and a valid image in it is mounted at /rom with /rom and
/rom/lib on sys.path at start-up, as mp_init() does (py/runtime.c).

The Unix port has no `machine` module; `fs_dir/machine.py` provides the one
function mpremote's `reset` calls, `machine.reset()`, as an exit (a restart here).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import threading
import tty
from pathlib import Path

MACHINE_PY = "import sys\n\n\ndef reset():\n    sys.exit(0)\n"
# Run before the REPL starts: fs_dir becomes the root filesystem.
BOOT = 'import vfs, os\nvfs.umount("/")\nvfs.mount(vfs.VfsPosix({fs!r}), "/")\nos.chdir("/")'
# ...and on a board with ROMFS, first (while the host's files are still at /):
ROMFS_BOOT = """import vfs as _vfs, sys
_pf = open({part!r}, "r+b")


class _Part(bytearray):
    def ioctl(self, op, arg):
        if op == 4:  # MP_BLOCKDEV_IOCTL_BLOCK_COUNT
            return len(self) // 4096
        if op == 5:  # MP_BLOCKDEV_IOCTL_BLOCK_SIZE
            return 4096
        if op == 6:  # MP_BLOCKDEV_IOCTL_BLOCK_ERASE
            self.writeblocks(arg, b"\\xff" * 4096)
        return 0

    def writeblocks(self, block, buf, offset=0):
        at = block * 4096 + offset
        self[at : at + len(buf)] = buf
        _pf.seek(at)
        _pf.write(buf)
        _pf.flush()


_part = _Part(_pf.read())


def _rom_ioctl(op, *args):
    if op == 1:  # MP_VFS_ROM_IOCTL_GET_NUMBER_OF_SEGMENTS
        return 1 if len(_part) else 0
    if op == 2 and len(_part) and args[0] == 0:  # MP_VFS_ROM_IOCTL_GET_SEGMENT
        return _part
    return -22


class _Vfs:
    pass


_shim = _Vfs()
for _k in dir(_vfs):
    if not _k.startswith("__"):
        setattr(_shim, _k, getattr(_vfs, _k))
_shim.rom_ioctl = _rom_ioctl
sys.modules["vfs"] = _shim
"""
ROMFS_MOUNT = """
if bytes(_part[:3]) == b"\\xd2\\xcd\\x31":
    _vfs.mount(_vfs.VfsRom(memoryview(_part)), "/rom")
    sys.path.append("/rom")
    sys.path.append("/rom/lib")
"""


class PtyBoard:
    def __init__(self, micropython: str, fs_dir: Path, romfs: int | None = None):
        self.exe = micropython
        self.fs = Path(fs_dir)
        self.fs.mkdir(parents=True, exist_ok=True)
        (self.fs / "machine.py").write_text(MACHINE_PY)
        self.boot = BOOT.format(fs=str(self.fs.resolve()))
        self.partition = self.fs.with_name(self.fs.name + ".romfs-partition")
        if romfs is not None:
            self.partition.write_bytes(b"\xff" * romfs)  # erased flash
            self.boot = ROMFS_BOOT.format(part=str(self.partition.resolve())) + self.boot + ROMFS_MOUNT
        self.restarts = 0
        self._outer, slave = pty.openpty()  # mpremote's end
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the port stays usable between mpremote runs
        self._stop = False
        self._start(raw=False)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _start(self, raw: bool) -> None:
        inner, slave = pty.openpty()
        tty.setraw(slave)
        self.proc = subprocess.Popen(
            [self.exe, "-i", "-c", self.boot],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=self.fs,
            start_new_session=True,
        )
        os.close(slave)
        self._inner = inner
        if raw:
            os.write(inner, b"\x01")  # back to the raw REPL, where a soft reboot leaves mpremote

    def _pump(self) -> None:
        while not self._stop:
            try:
                r, _, _ = select.select([self._inner, self._outer], [], [], 0.2)
            except (OSError, ValueError):
                return
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if fd == self._outer:
                    if data:
                        os.write(self._inner, data)
                elif data:
                    os.write(self._outer, data)
                else:  # the interpreter exited: the board restarts
                    if self._stop:
                        return
                    self.proc.wait()
                    os.close(self._inner)
                    self.restarts += 1
                    os.write(self._outer, b"MPY: soft reboot\r\n")
                    self._start(raw=True)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._inner, self._outer, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
