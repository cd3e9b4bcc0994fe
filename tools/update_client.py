"""`p1tool.py update URL BUNDLE`: an OTA update of a dongle (docs/UPDATE.md).

Logs in with the admin password (--password, else $P1_PASSWORD, else asked
for), streams the bundle to POST /api/v1/update, prints the answer, then
(unless --no-wait) waits for the dongle to come back after its reboot and for
the new version's trial to end: healthy ("ok", exit 0) or rolled back (exit 1).
Standard library only.
"""

from __future__ import annotations

import argparse
import getpass
import http.client
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

_CHUNK = 8192
_DONE = ("ok", "rolled_back", "failed", "cancelled")


class Dongle:
    """HTTP to one dongle: `base` like http://dongle/ or http://127.0.0.1:8080/."""

    def __init__(self, base: str, password: str, timeout: float = 10.0) -> None:
        u = urlsplit(base if "://" in base else "http://" + base)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"expected http://HOST[:PORT]/, got {base!r}")
        self.host, self.port = u.hostname, u.port or 80
        self.password = password
        self.timeout = timeout
        self.token = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict]:  # fmt: skip
        c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            h = dict(headers or {})
            if self.token:
                h["Authorization"] = "Bearer " + self.token
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, _json(r.read())
        finally:
            c.close()

    def login(self) -> None:
        self.token = ""
        st, d = self.request("POST", "/api/v1/login", json.dumps({"password": self.password}).encode(),
                             {"Content-Type": "application/json"})  # fmt: skip
        if st != 200:
            raise PermissionError(f"login refused ({st}): {d.get('error', d)}")
        self.token = d["token"]

    def status(self) -> dict:
        st, d = self.request("GET", "/api/v1/status")
        if st == 401:  # readings behind the login, and the session ended with the reboot
            self.login()
            st, d = self.request("GET", "/api/v1/status")
        if st != 200:
            raise OSError(f"status: {st}")
        return d

    def upload(self, bundle: Path, query: str) -> tuple[int, dict]:
        """POST the bundle in chunks (never read whole); (status, JSON answer)."""
        size = bundle.stat().st_size
        c = http.client.HTTPConnection(self.host, self.port, timeout=max(self.timeout, 60))
        try:
            c.putrequest("POST", "/api/v1/update" + query)
            c.putheader("Content-Type", "application/x-tar")
            c.putheader("Content-Length", str(size))
            c.putheader("Authorization", "Bearer " + self.token)
            c.endheaders()
            try:
                with bundle.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        c.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused early: its answer may still be there to read
            r = c.getresponse()
            return r.status, _json(r.read())
        finally:
            c.close()


def _json(body: bytes) -> dict:
    try:
        d = json.loads(body)
        return d if isinstance(d, dict) else {"answer": d}
    except ValueError:
        return {"answer": body.decode(errors="replace")}


def wait_back(d: Dongle, before_uptime: int, timeout: float, out=sys.stdout) -> int:
    """After the reboot: until the update's state is final; 0 if the new version runs."""
    end = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < end:
        time.sleep(1.0)
        try:
            s = d.status()
        except (OSError, http.client.HTTPException, PermissionError):
            continue  # rebooting
        u = s.get("update") or {}
        state = u.get("state", "")
        if state in ("staged", "switching") or (s.get("uptime_s", 0) >= before_uptime and state == "staged"):
            continue
        if state != seen:
            seen = state
            print(f"update: {state}: {u.get('result', '')} (running {s.get('version')})", file=out, flush=True)
        if state in _DONE:
            return 0 if state == "ok" else 1
    print(f"update: no final state within {timeout:.0f} s (last: {seen or 'no answer'})", file=out)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p1tool.py update", description=__doc__.splitlines()[0])
    ap.add_argument("url", help="the dongle, e.g. http://p1-ab12.local/")
    ap.add_argument("bundle", type=Path, help="build/BOARD-VERSION.tar (make bundle)")
    ap.add_argument("--password", help="the admin password (default: $P1_PASSWORD, else asked)")
    ap.add_argument("--force", action="store_true", help="install an older or the same version too")
    ap.add_argument("--trial-s", type=int, help="seconds the new version has to report healthy (default 300)")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for the reboot and the trial")
    ap.add_argument("--timeout", type=float, default=600.0, help="how long to wait for the result (s)")
    args = ap.parse_args(argv)
    if not args.bundle.is_file():
        print(f"update: no such bundle: {args.bundle}", file=sys.stderr)
        return 2
    pw = args.password or os.environ.get("P1_PASSWORD") or getpass.getpass("admin password: ")
    try:
        d = Dongle(args.url, pw)
        d.login()
        before = d.status()
        print(f"update: {args.url} runs {before.get('version')} on {before.get('board')}; "
              f"sending {args.bundle.name} ({args.bundle.stat().st_size} bytes)", flush=True)  # fmt: skip
        q = [p for p in ("force=1" if args.force else "", f"trial_s={args.trial_s}" if args.trial_s else "") if p]
        t0 = time.monotonic()
        st, ans = d.upload(args.bundle, "?" + "&".join(q) if q else "")
    except (OSError, ValueError, PermissionError, http.client.HTTPException) as e:
        print(f"update: {e}", file=sys.stderr)
        return 1
    if st != 200:
        print(f"update: refused ({st}): {ans.get('error', ans)}", file=sys.stderr)
        return 1
    print(f"update: {ans['version']} staged in {time.monotonic() - t0:.1f} s (was {ans['previous']})"
          + ("; the dongle reboots" if ans.get("reboot") else ""), flush=True)  # fmt: skip
    if args.no_wait or not ans.get("reboot"):
        return 0
    return wait_back(d, before.get("uptime_s", 0), args.timeout)
