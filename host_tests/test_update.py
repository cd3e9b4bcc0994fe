"""OTA update over real HTTP on 127.0.0.1, reboot included (docs/UPDATE.md): the
host firmware runs from an installed copy (`p1tool.py run --ota DIR`), its reset
ends the process and the runner starts it again, as a device boots. A bundle
(tools/bundle.py, the host board's flavour) is streamed to POST /api/v1/update;
refused bundles change nothing; a new version that does not start or does not
report healthy is rolled back after the restart. Under CPython and under
MicroPython's Unix port."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_harness import REPO, Firmware

sys.path.insert(0, str(REPO / "tools"))
import bundle  # noqa: E402

PW = "correct horse 1"
J = {"Content-Type": "application/json"}
OLD = (REPO / "firmware" / "version.py").read_text().split('"')[-2]
NEW = ".".join(OLD.split(".")[:-1] + [str(int(OLD.split(".")[-1]) + 1)])


def make_bundle(path: Path, arch: str, ver: str, patch: dict[str, str] | None = None,
                board: str = "host", files: dict[str, bytes] | None = None) -> Path:  # fmt: skip
    """A host-board bundle of version `ver`; `patch`: {module: source} replaced."""
    f = dict(files) if files is not None else bundle.host_contents(arch, ver)
    for name, src in (patch or {}).items():
        f.update(bundle.module(name, src, arch))
    man = bundle.manifest("host", f, arch, ver)
    man["board"] = board
    bundle.write_tar(path, man, f)
    return path


def start(tmp: Path, *args: str) -> Firmware:
    return Firmware(tmp, "--ota", str(tmp / "root"), "--interval", "0.2", *args, config="{}")


def password(fw: Firmware) -> str:
    st, _, b = fw.get("/api/v1/password", "POST", json.dumps({"password": PW}), J)
    assert st == 200, b
    return json.loads(b)["token"]


def upload(fw: Firmware, data: bytes, token: str | None, query: str = "") -> tuple[int, dict]:
    c = http.client.HTTPConnection("127.0.0.1", fw.port, timeout=30)
    try:
        h = {"Content-Type": "application/x-tar"}
        if token:
            h["Authorization"] = "Bearer " + token
        c.request("POST", "/api/v1/update" + query, body=data, headers=h)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def tree(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip


def update_state(fw: Firmware) -> dict | None:
    return fw.status()["update"]


def wait_version(fw: Firmware, version: str, state: str, timeout: float = 60.0) -> dict:
    def ok():
        try:
            s = fw.status()
        except (OSError, http.client.HTTPException):  # restarting (an answer cut by the reset too)
            return None
        u = s["update"] or {}
        return s if s["version"] == version and u.get("state") == state else None

    return fw.wait(ok, timeout, f"version {version}, update {state}")


@pytest.fixture
def fw(tmp_path):
    f = start(tmp_path)
    yield f
    f.stop_ok()


def test_update_with_the_client_then_new_version_after_restart(fw, tmp_path):
    """`p1tool.py update` logs in, streams the bundle, waits for the reboot and the trial."""
    password(fw)
    assert fw.status()["version"] == OLD and update_state(fw) is None
    tar = make_bundle(tmp_path / "new.tar", "py", NEW)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "p1tool.py"), "update", f"http://127.0.0.1:{fw.port}/",
                        str(tar), "--password", PW, "--trial-s", "60", "--timeout", "60"],
                       capture_output=True, text=True, timeout=90)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr + fw.stderr()
    assert f"{NEW} staged" in r.stdout and f"update: ok: updated from {OLD} to {NEW} (running {NEW})" in r.stdout
    s = fw.status()
    assert s["version"] == NEW
    assert s["update"] == {"state": "ok", "version": NEW, "previous": OLD, "boots": 1, "trial_s": 60,
                           "result": f"updated from {OLD} to {NEW}"}  # fmt: skip
    assert list(s["update"]) == ["state", "version", "previous", "boots", "trial_s", "result"]
    assert s["reset_reason"] == f"update to {NEW}" and s["boot_count"] == 2
    root = tmp_path / "root"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("update.json")) == ["app", "prev"]
    assert f'"{NEW}"' in (root / "app" / "version.py").read_text()
    assert f'"{OLD}"' in (root / "prev" / "version.py").read_text()  # kept for a rollback
    assert any("firmware reset: starting it again" in x for x in fw.stderr().splitlines())


def test_refused_bundles_change_nothing(fw, tmp_path):
    root = tmp_path / "root"
    good = make_bundle(tmp_path / "good.tar", "py", NEW).read_bytes()
    st, d = upload(fw, good, None)
    assert st == 403 and d["error"] == "set an admin password first"
    token = password(fw)
    st, d = upload(fw, good, None)
    assert (st, d) == (401, {"error": "login required", "status": 401})
    assert upload(fw, good, "0" * 32)[0] == 401
    before = tree(root / "app")

    files = bundle.host_contents("py", NEW)
    bad = dict(files, **{"clock.py": files["clock.py"][:-2] + b"#\n"})
    man = bundle.manifest("host", files, "py", NEW)
    bundle.write_tar(tmp_path / "bad.tar", man, bad)  # the manifest of the good files
    cases = [
        (make_bundle(tmp_path / "old.tar", "py", "0.0.1", files=files).read_bytes(), "", 409,
         f"version 0.0.1 is not newer than {OLD} (?force=1 installs it anyway)"),
        (make_bundle(tmp_path / "same.tar", "py", OLD, files=files).read_bytes(), "", 409,
         f"version {OLD} is not newer than {OLD} (?force=1 installs it anyway)"),
        (make_bundle(tmp_path / "board.tar", "py", NEW, board="esp32-devkit", files=files).read_bytes(), "?force=1",
         422, "the bundle is for board esp32-devkit, this is host"),
        (make_bundle(tmp_path / "arch.tar", "x64", NEW, files=files).read_bytes(), "", 422,
         "the bundle's code is for x64, this board runs py"),
        ((tmp_path / "bad.tar").read_bytes(), "", 422, "clock.py does not match its SHA-256 in the manifest"),
        (good[: len(good) // 2], "", 400, "truncated upload: the bundle ends after %d bytes" % (len(good) // 2)),
        (good[512 * 3 :], "", 400, "not a tar file"),  # (starts inside the manifest's text)
        (b"\0" * 1024, "", 400, "no manifest: an empty bundle"),
    ]
    for data, query, status, error in cases:
        st, d = upload(fw, data, token, query)
        assert (st, d.get("error")) == (status, error), d
    # the client says why
    r = subprocess.run([sys.executable, str(REPO / "tools" / "p1tool.py"), "update", f"http://127.0.0.1:{fw.port}/",
                        str(tmp_path / "old.tar"), "--password", PW], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1 and r.stderr == (
        f"update: refused (409): version 0.0.1 is not newer than {OLD} (?force=1 installs it anyway)\n")
    # a manifest not first; one that lists a file the bundle lacks
    with_tar = tmp_path / "nomanifest.tar"
    bundle.write_tar(with_tar, man, files)
    raw = with_tar.read_bytes()
    first = 512 + -(-len(bundle.manifest_text(man).encode()) // 512) * 512
    st, d = upload(fw, raw[first:], token)
    assert st == 400 and d["error"] == "no manifest: the bundle must begin with manifest.json"
    last = list(files)[-1]
    for gone, error in (("clock.py", "config.py is not in the manifest or out of its order (expected clock.py)"),
                        (last, f"{last} is missing from the bundle")):  # fmt: skip
        bundle.write_tar(tmp_path / "short.tar", man, {k: v for k, v in files.items() if k != gone})
        st, d = upload(fw, (tmp_path / "short.tar").read_bytes(), token)
        assert (st, d["error"]) == (422, error)
    # a client that goes away half-way
    with socket.create_connection(("127.0.0.1", fw.port)) as s:
        s.sendall(b"POST /api/v1/update HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  b"Content-Length: %d\r\n\r\n" % (token.encode(), len(good)) + good[:100000])  # fmt: skip
    fw.wait(lambda: "truncated upload: the connection ended after 100000 bytes" in "".join(fw.status()["log"]),
            10, "the cut upload refused")  # fmt: skip
    # nothing changed: the same files, no stage, no update state, the same process
    assert tree(root / "app") == before
    assert sorted(p.name for p in root.iterdir()) == ["app"]
    s = fw.status()
    assert s["version"] == OLD and s["update"] is None and s["boot_count"] == 1
    assert upload(fw, b"", token, "")[0] == 400
    assert fw.get("/api/v1/update")[0] == 405


def test_a_version_that_does_not_start_is_rolled_back(fw, tmp_path):
    """app.py of the new version raises at import: it crashes at every start; after
    otaboot.MAX_BOOTS starts the previous version is back."""
    token = password(fw)
    tar = make_bundle(tmp_path / "broken.tar", "py", NEW, {"app": "raise ImportError('this release is broken')\n"})
    st, d = upload(fw, tar.read_bytes(), token)
    assert (st, d) == (200, {"staged": True, "version": NEW, "previous": OLD, "reboot": True})
    s = wait_version(fw, OLD, "rolled_back")
    assert s["update"]["result"] == f"rolled back to {OLD}: {NEW} did not start (3 boots)"
    assert s["update"]["boots"] == 4
    err = fw.stderr()
    assert err.count("ImportError: this release is broken") == 3 and err.count("crashed (exit 1): starting it again") == 3
    assert "update: rolled back to" in "".join(s["log"])
    root = tmp_path / "root"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("update.json")) == ["app"]
    assert f'"{OLD}"' in (root / "app" / "version.py").read_text()


METER_DEAF = "\n\nasync def run(board, pipeline, source):  # this release hears no meter\n" \
             "    import asyncio\n\n    while True:\n        await asyncio.sleep(1)\n"  # fmt: skip


def _unix_micropython():
    if not (Path(sys.executable).parent / "micropython").exists():
        pytest.fail("micropython (the Unix port) is not installed: run `make setup`", pytrace=False)


def test_under_micropython_update_then_unhealthy_version_rolled_back(tmp_path):
    """The Unix port at today's heap (test_memory_budget.TODAY_PLAIN_K): a good update, then
    one whose meter task never parses a telegram: not healthy within trial_s, so it
    resets, and boot rolls back to the version before it; the reason in status."""
    _unix_micropython()
    fw = start(tmp_path, "--mp", "--heap", "152K")
    try:
        token = password(fw)
        st, d = upload(fw, make_bundle(tmp_path / "new.tar", "x64", NEW).read_bytes(), token, "?trial_s=60")
        assert st == 200, d
        s = wait_version(fw, NEW, "ok")
        assert s["alloc_heap"] is not None  # (MicroPython)
        assert "web.update" not in "".join(s["log"])  # (no error)
        newer = NEW + ".1"
        src = (REPO / "firmware" / "meter.py").read_text() + METER_DEAF
        tar = make_bundle(tmp_path / "deaf.tar", "x64", newer, {"meter": src})
        token = json.loads(fw.get("/api/v1/login", "POST", json.dumps({"password": PW}), J)[2])["token"]
        st, d = upload(fw, tar.read_bytes(), token, "?trial_s=3")
        assert st == 200, d
        s = wait_version(fw, NEW, "rolled_back")
        assert s["update"]["result"] == f"rolled back to {NEW}: {newer} not healthy within 3 s: no telegram"
        assert s["reset_reason"] == f"update: {newer} not healthy within 3 s: no telegram"
        fw.wait(lambda: fw.status()["telegrams"] > 0, 10, "telegrams again")
    finally:
        fw.stop_ok()


def test_no_update_while_the_last_one_is_on_trial(fw, tmp_path):
    """A new version that has not reported healthy yet keeps the one before it in prev:
    another update is refused until the trial ends."""
    token = password(fw)
    src = (REPO / "firmware" / "meter.py").read_text() + METER_DEAF
    st, d = upload(fw, make_bundle(tmp_path / "deaf.tar", "py", NEW, {"meter": src}).read_bytes(), token, "?trial_s=600")
    assert st == 200, d
    s = wait_version(fw, NEW, "trial")
    assert s["update"]["boots"] == 1 and s["update"]["trial_s"] == 600
    token = json.loads(fw.get("/api/v1/login", "POST", json.dumps({"password": PW}), J)[2])["token"]
    newer = make_bundle(tmp_path / "newer.tar", "py", NEW + ".1").read_bytes()
    st, d = upload(fw, newer, token)
    assert (st, d["error"]) == (409, f"the update to {NEW} is on trial until it reports healthy")
    assert sorted(p.name for p in (tmp_path / "root").iterdir() if not p.name.startswith("update.json")) == [
        "app", "prev"]  # fmt: skip
