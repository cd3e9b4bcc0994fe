#!/usr/bin/env python3
"""A 32-bit MicroPython Unix port for the memory budget, from Debian's archive.

The ESP32 is a 32-bit machine; the Unix port from PyPI is 64-bit, where pointers
and object headers are twice the size, so its heap only stands for the device's
through calibration factors (docs/MEMORY.md). Debian builds MicroPython's Unix
port for i386 too (package `micropython`, trixie: 1.25.0): its heap has the
ESP32's word size and GC block (16 bytes), the same feature level (EXTRA_FEATURES),
the C `_asyncio`, and mbedTLS with its buffers outside the Python heap. It runs
on an x86-64 Debian 12 with the 32-bit C library (apt package `libc6-i386`).

    python3 tools/mp32.py [--dest DIR]      (make setup runs it)

Fetches, into DIR (default .venv/mp32), the i386 packages of `micropython` and the
libraries it links (libffi, mbedTLS) from deb.debian.org, each checked the way apt
checks it: the suite's InRelease verified with gpgv against Debian's archive
keyring, the Packages index by the SHA-256 InRelease gives, every .deb by the
SHA-256 the index gives; unpacked with dpkg-deb (nothing is installed on the
system). Writes `.venv/bin/micropython32`, which runs it with those libraries.
Nothing is fetched again once DIR holds the wanted version.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import platform
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIRROR = "http://deb.debian.org/debian"
SUITE = "trixie"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
VERSION = "1.25.0"  # MicroPython's version in the suite (checked: another one is an error)
PACKAGES = ("micropython", "libffi8", "libmbedtls21", "libmbedcrypto16", "libmbedx509-7")
LIBS = "usr/lib/i386-linux-gnu"


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def signed_release(tmp: Path) -> str:
    """The suite's InRelease, its signature checked; only the signed text is returned."""
    path = tmp / "InRelease"
    path.write_bytes(fetch(f"{MIRROR}/dists/{SUITE}/InRelease"))
    out = tmp / "Release"
    r = subprocess.run(["gpgv", "--keyring", KEYRING, "--output", str(out), str(path)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"mp32: {SUITE}'s InRelease does not verify against {KEYRING}:\n{r.stderr}")
    return out.read_text()


def index_sha256(release: str, name: str) -> tuple[str, int]:
    """(SHA-256, size) of file `name` from the Release text's SHA256 list."""
    lines = release.split("\n")
    start = lines.index("SHA256:")
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        sha, size, path = line.split()
        if path == name:
            return sha, int(size)
    raise SystemExit(f"mp32: {name} is not listed in {SUITE}'s Release")


def stanzas(packages: str, wanted: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Package name -> its fields, for the `wanted` packages of a Packages index."""
    found: dict[str, dict[str, str]] = {}
    for block in packages.split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if line and not line.startswith(" ") and ":" in line:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        if fields.get("Package") in wanted:
            found[fields["Package"]] = fields
    return found


def checked(data: bytes, sha: str, what: str) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        raise SystemExit(f"mp32: {what}: SHA-256 {got}, the index says {sha}")
    return data


def install(dest: Path) -> Path:
    stamp = dest / ".p1-mp32"
    exe = dest / "usr" / "bin" / "micropython"
    if stamp.is_file() and stamp.read_text().startswith(VERSION) and exe.is_file():
        return exe
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        release = signed_release(tmp)
        name = "main/binary-i386/Packages.xz"
        sha, _ = index_sha256(release, name)
        index = lzma.decompress(checked(fetch(f"{MIRROR}/dists/{SUITE}/{name}"), sha, name)).decode()
        found = stanzas(index, PACKAGES)
        missing = [p for p in PACKAGES if p not in found]
        if missing:
            raise SystemExit(f"mp32: not in {SUITE} for i386: {', '.join(missing)}")
        version = found["micropython"]["Version"]
        if not version.startswith(VERSION + "+"):
            raise SystemExit(
                f"mp32: {SUITE} has micropython {version}, not {VERSION}: update VERSION and docs/MEMORY.md"
            )
        new = dest.with_name(dest.name + ".new")
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
        for p in PACKAGES:
            f = found[p]
            deb = tmp / f["Filename"].rsplit("/", 1)[1]
            deb.write_bytes(checked(fetch(f"{MIRROR}/{f['Filename']}"), f["SHA256"], f["Filename"]))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(new)], check=True)
        (new / ".p1-mp32").write_text(f"{version}\n" + "".join(f"{p} {found[p]['Version']}\n" for p in PACKAGES))
        shutil.rmtree(dest, ignore_errors=True)
        new.rename(dest)
    return exe


def wrapper(dest: Path, bindir: Path) -> Path:
    """`micropython32`: the i386 build with its libraries (the system's are 64-bit)."""
    w = bindir / "micropython32"
    w.write_text(
        "#!/bin/sh\n# tools/mp32.py: Debian's 32-bit MicroPython Unix port\n"
        f'LD_LIBRARY_PATH="{dest / LIBS}" exec "{dest / "usr/bin/micropython"}" "$@"\n'
    )
    w.chmod(0o755)
    r = subprocess.run([str(w), "-c", "import sys; print(sys.maxsize)"], capture_output=True, text=True)
    if r.returncode or r.stdout.strip() != str(2**31 - 1):
        raise SystemExit(
            f"mp32: {w} does not run as a 32-bit MicroPython (is libc6-i386 installed?):\n{r.stdout}{r.stderr}"
        )
    return w


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=ROOT / ".venv" / "mp32")
    a = ap.parse_args()
    if platform.machine() not in ("x86_64", "i686", "i386"):  # (the budget test's [device] case is skipped)
        print(f"mp32: Debian's i386 MicroPython does not run on {platform.machine()}: not installed")
        return 0
    install(a.dest)
    w = wrapper(a.dest, ROOT / ".venv" / "bin")
    print(f"mp32: {w} ({(a.dest / '.p1-mp32').read_text().split()[0]}, i386)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
