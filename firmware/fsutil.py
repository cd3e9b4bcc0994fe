"""Small file helpers that work on MicroPython's VFS (FAT, littlefs) and CPython."""

import os


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def write_atomic(path, text):
    """Write `text` to `path` through a temporary file and a rename.

    A power cut leaves either the old file or the new one. FAT cannot rename
    over an existing file, so there the old one is removed first. Raises OSError.
    """
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    try:
        os.rename(tmp, path)
    except OSError:
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)
