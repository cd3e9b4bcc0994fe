"""Power-safe small files on MicroPython's VFS (FAT, littlefs) and CPython.

Strategy: a file is only ever replaced by a rename, never written in place, and
carries a checksum line, so a power cut at any byte of any step leaves the old
content or the new one, and `read()` tells which copy is whole:

  write_atomic(path, data):
    0. if `path` is missing (a cut between steps 4 and 5 of the last write),
       the whole one of path.tmp / path.bak becomes `path` again first
    1. remove path.tmp        (a half-written one of an earlier cut)
    2. write path.tmp         data + b"#p1crc <crc32 of data, 8 hex>\\n"
    3. remove path.bak
    4. rename path -> path.bak (FAT cannot rename over a file: never needed)
    5. rename path.tmp -> path
  read(path): the first whole copy of path, path.tmp, path.bak.

Whole: the last line is the checksum line and matches. `path` itself may also
have no checksum line at all (written by hand, or by an older firmware): it is
only ever created by a rename of a whole file. A file with a checksum line that
does not match is never used (edited by hand: delete that last line).

The model: a rename and a remove are atomic (littlefs: yes; FAT: one directory
entry), a write may stop after any byte. host_tests/test_fsutil.py cuts the
power after every operation (and inside every write) and checks this.
"""

import os
from binascii import crc32

_SUFFIX = (".tmp", ".bak")


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def remove(path):
    """Remove `path` and its copies, quietly: the copies first, so that a cut
    leaves the file or nothing, never an older copy."""
    for s in _SUFFIX + ("",):
        _remove(path + s)


def _trailer(data):
    return b"#p1crc %08x\n" % (crc32(data) & 0xFFFFFFFF)


def check(raw, legacy=False):
    """The data of the file contents `raw` if whole, else None. `legacy`: a file
    without a checksum line counts as whole."""
    n = len(raw) - 16
    if n >= 0 and raw[n : n + 7] == b"#p1crc ":
        data = raw[:n]
        return data if raw[n:] == _trailer(data) else None
    return raw if legacy else None


def _load(path, limit):
    try:
        with open(path, "rb") as f:
            # read(n) asks the heap for n bytes at once on MicroPython, whatever the
            # file's size: 8 KB in one block failed in a fragmented heap (a settings
            # save got a 500); ask for what the file holds
            n = min(f.seek(0, 2), limit + 17)
            f.seek(0)
            return f.read(n)
    except OSError:
        return None


def read(path, limit=8192):
    """(data, copy): the bytes of the newest whole copy of `path` (more than
    `limit` of them only if the file is larger) and which copy it was ("", ".tmp", ".bak"); (None, why)
    if there is none: why is "missing" or "damaged" (every copy there is broken)."""
    why = "missing"
    for s in ("",) + _SUFFIX:
        raw = _load(path + s, limit)
        if raw is None:
            continue
        data = check(raw, s == "")
        if data is not None:  # (longer than `limit` if the file is: the caller tells)
            return data, s
        why = "damaged"
    return None, why


def read_into(path, buf):
    """Fill the bytearray `buf` from the newest whole copy of `path` whose data is
    exactly len(buf) bytes: True; else False (none, every copy broken or of
    another size), `buf` then undefined. The same copies and checks as read()
    without its copies of the data: the history's ring files (1.4 KB) cost one
    block of the heap, the caller's, instead of three of that size."""
    n = len(buf)
    for s in ("",) + _SUFFIX:
        try:
            with open(path + s, "rb") as f:
                size = f.seek(0, 2)
                if size != n + 16 and (s or size != n):  # (`path` itself may have no checksum line)
                    continue
                f.seek(0)
                if f.readinto(buf) != n:
                    continue
                t = f.read(16)
        except OSError:
            continue
        if t == _trailer(buf) or (not t and not s):
            return True
    return False


def write_atomic(path, data):
    """Replace `path` with `data` (str or bytes) power-safely (see above). Raises OSError."""
    if isinstance(data, str):
        data = data.encode()
    if not exists(path):  # step 0: put back the copy read() would give, before step 1 or 3 removes it
        for s in _SUFFIX:
            raw = _load(path + s, 16384)
            if raw is not None and check(raw) is not None:
                os.rename(path + s, path)
                break
    tmp = path + ".tmp"
    _remove(tmp)
    with open(tmp, "wb") as f:
        f.write(data)
        f.write(_trailer(data))
    _remove(path + ".bak")
    try:
        os.rename(path, path + ".bak")
    except OSError:  # no old file
        pass
    os.rename(tmp, path)
