# Power cuts at every step of firmware/fsutil.py's writes, on a fake file layer.
# Shared by host_tests/test_fsutil.py (CPython) and host_tests/test_fsutil_mp.py
# (MicroPython's Unix port runs this file). MicroPython-compatible: no pathlib,
# no f-strings, plain asserts.
#
# The fake: a dict of name -> bytes. Every remove, rename, open for writing and
# every single byte written is one operation; after `budget` of them the power
# goes (Cut is raised) and what was written so far stays, byte for byte. A
# rename onto an existing name fails on FAT (as MicroPython's FAT VFS does) and
# replaces it on littlefs / the host.
import sys

import fsutil


class Cut(Exception):
    pass


class Fs:
    def __init__(self, fat):
        self.files = {}
        self.fat = fat
        self.budget = -1  # -1: no cut
        self.ops = 0

    def op(self):
        if self.budget == 0:
            raise Cut()
        if self.budget > 0:
            self.budget -= 1
        self.ops += 1

    # os
    def stat(self, p):
        if p not in self.files:
            raise OSError(2)
        return (0, 0, 0, 0, 0, 0, len(self.files[p]), 0, 0, 0)

    def remove(self, p):
        self.op()
        if p not in self.files:
            raise OSError(2)
        del self.files[p]

    def rename(self, a, b):
        self.op()
        if a not in self.files or (self.fat and b in self.files):
            raise OSError(17)
        self.files[b] = self.files.pop(a)

    # open
    def open(self, p, mode="r"):
        if "r" in mode:
            if p not in self.files:
                raise OSError(2)
            return Reader(self.files[p])
        self.op()
        if "w" in mode or p not in self.files:
            self.files[p] = b""
        return Writer(self, p)


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, n=-1):
        d = self.data[self.pos :] if n < 0 else self.data[self.pos : self.pos + n]
        self.pos += len(d)
        return d

    def readinto(self, buf):
        d = self.read(len(buf))
        buf[: len(d)] = d
        return len(d)

    def seek(self, off, whence=0):  # (only ever: to the end for the size, back to 0)
        self.pos = len(self.data) if whence == 2 else off
        return self.pos

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass


class Writer:
    def __init__(self, fs, p):
        self.fs = fs
        self.p = p

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        for i in range(len(data)):
            self.fs.op()
            self.fs.files[self.p] += data[i : i + 1]
        return len(data)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass


class Os:  # what fsutil calls as os.<name>
    def __init__(self, fs):
        self.stat = fs.stat
        self.remove = fs.remove
        self.rename = fs.rename


def install(fs):
    """Point fsutil (and what imported its functions) at the fake."""
    fsutil.os = Os(fs)
    fsutil.open = fs.open


def uninstall():
    import os

    fsutil.os = os
    try:
        del fsutil.open
    except (AttributeError, KeyError):
        pass


P = "/d/f.json"


def read(fs):
    """What fsutil.read gives; fsutil.read_into (the history's rings) must give the same."""
    fs.budget = -1
    got = fsutil.read(P)[0]
    if got is not None:
        buf = bytearray(len(got))
        assert fsutil.read_into(P, buf) and bytes(buf) == got, (got, buf)
        assert not fsutil.read_into(P, bytearray(len(got) + 1))  # (another size: none)
    return got


def cut_write(fs, data, n):
    """write_atomic with the power gone after `n` operations: True if it finished."""
    fs.budget = n
    try:
        fsutil.write_atomic(P, data)
        fs.budget = -1
        return True
    except Cut:
        fs.budget = -1
        return False


def states(fat, old):
    """The file systems to start from: no file, a file without a checksum line
    (by hand or an older firmware), a file fsutil wrote (with a .bak)."""
    out = []
    for kind in ("none", "legacy", "written"):
        fs = Fs(fat)
        install(fs)
        if kind == "legacy":
            fs.files[P] = old
        elif kind == "written":
            fsutil.write_atomic(P, b"older")
            fsutil.write_atomic(P, old)
        out.append((kind, fs))
    return out


def copy(fs):
    c = Fs(fs.fat)
    c.files = dict(fs.files)
    return c


def case_cut_at_every_step(fat, old=b'{"a": 1}\n', new=b'{"a": 22, "b": "x"}\n', newer=b"{}\n"):
    """Every cut of a write, then every cut of the next write: each read gives the
    content before that write or after it, never a broken file, never nothing."""
    checked = 0
    for kind, start in states(fat, old):
        before = None if kind == "none" else old
        n = 0
        while True:
            fs = copy(start)
            install(fs)
            finished = cut_write(fs, new, n)
            got = read(fs)
            assert got == new or (got == before and not finished), (kind, n, got)
            assert read(fs) == got  # reading changes nothing
            # the next write, cut at every step, starting from this state
            m = 0
            while True:
                fs2 = copy(fs)
                install(fs2)
                done2 = cut_write(fs2, newer, m)
                got2 = read(fs2)
                assert got2 == newer or (got2 == got and not done2), (kind, n, m, got, got2)
                checked += 1
                if done2:
                    break
                m += 1
            if finished:
                break
            n += 1
    return checked


def case_config_save(fat):
    """config.save cut at every step: config.load gives the old or the new settings."""
    import config

    old = config.copy_defaults()
    new = config.copy_defaults()
    new["http"]["port"] = 9000
    new["wifi"]["ssid"] = "home"
    path = "/c.json"
    fs = Fs(fat)
    install(fs)
    config.save(path, old)
    start = copy(fs)
    n = 0
    while True:
        fs = copy(start)
        install(fs)
        fs.budget = n
        try:
            config.save(path, new)
            finished = True
        except Cut:
            finished = False
        fs.budget = -1
        cfg, errors = config.load(path)
        assert cfg == new or (cfg == old and not finished), (n, cfg)
        assert not [e for e in errors if "cut short" not in e], errors
        if finished:
            return n
        n += 1


def run():
    try:
        total = 0
        for fat in (True, False):
            total += case_cut_at_every_step(fat)
            total += case_config_save(fat)
        return total
    finally:
        uninstall()


if __name__ == "__main__":
    print("cut cases:", run(), "cuts checked on", sys.implementation.name)
