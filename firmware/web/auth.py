"""The admin password and login sessions (cold: imported for a request that
needs it, dropped after; web.settings and web.api use it).

Stored as "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>" in
admin.password_hash: PBKDF2-HMAC-SHA256 (RFC 8018) over MicroPython's
`hashlib.sha256`, which has no copy(), so each HMAC hashes its key pads again
(4 SHA-256 blocks per iteration instead of 2). ITERATIONS is what an ESP32 at
80 MHz does in about a second (measured and estimated in docs/SECURITY.md); the
derivation yields to the event loop every _CHUNK iterations, so the meter and
the other connections go on while it runs. Comparisons run in constant time.

A login gives a random token (16 bytes from os.urandom, hex): as a cookie
(HttpOnly, SameSite=Strict) for the page, or `Authorization: Bearer <token>`
for scripts. The few tokens live in `app.sessions` (until logout, a password
change or a reboot; at most _SESSIONS, the oldest goes first): nothing else
stays in RAM. Failed logins: from the _FREE-th one on, the next login is
refused (429) for 1 s, doubling to 5 minutes (`app.login_fails`).
"""

import hashlib
import os
from binascii import hexlify, unhexlify

from clock import ticks_add, ticks_diff, ticks_ms

ITERATIONS = 2500
_CHUNK = 50
_SESSIONS = 4
_FREE = 3
COOKIE = "p1session"


def _hmac(ko, ki, msg):
    """HMAC-SHA256 with the key's pads `ko`, `ki` (64 bytes each)."""
    h = hashlib.sha256(ki)
    h.update(msg)
    h2 = hashlib.sha256(ko)
    h2.update(h.digest())
    return h2.digest()


async def pbkdf2(password, salt, n):
    """PBKDF2-HMAC-SHA256 of `password` (bytes), one 32-byte block, `n` iterations."""
    import asyncio

    k = password
    if len(k) > 64:
        k = hashlib.sha256(k).digest()
    k = k + bytes(64 - len(k))
    ko = bytes(b ^ 0x5C for b in k)
    ki = bytes(b ^ 0x36 for b in k)
    u = _hmac(ko, ki, salt + b"\x00\x00\x00\x01")
    acc = int.from_bytes(u, "big")
    i = 1
    while i < n:
        u = _hmac(ko, ki, u)
        acc ^= int.from_bytes(u, "big")
        i += 1
        if i % _CHUNK == 0:
            await asyncio.sleep(0)
    return acc.to_bytes(32, "big")


def same(a, b):
    """a == b (bytes) in a time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


async def make_hash(password, n=ITERATIONS):
    salt = os.urandom(16)
    d = await pbkdf2(password.encode(), salt, n)
    return "pbkdf2-sha256$%d$%s$%s" % (n, hexlify(salt).decode(), hexlify(d).decode())


async def check(password, stored):
    """True if `password` (str) matches `stored` (a make_hash() text)."""
    try:
        kind, n, salt, want = stored.split("$")
        n = int(n)
        want = unhexlify(want)
        if kind != "pbkdf2-sha256" or not 0 < n <= 10000000:
            return False
        salt = unhexlify(salt)
    except ValueError:
        return False
    return same(await pbkdf2(password.encode(), salt, n), want)


def token_of(req):
    """The session token a request carries (Bearer, else the cookie), or None."""
    h = req.headers
    a = h.get("authorization", "")
    if a[:7].lower() == "bearer ":
        return a[7:].strip()
    for part in h.get("cookie", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == COOKIE:
            return v
    return None


def ok(req, app):
    """True if `req` carries a live session token."""
    t = token_of(req)
    if not t:
        return False
    t = t.encode()
    good = False
    for s in getattr(app, "sessions", ()):
        good = same(t, s.encode()) or good  # (every one compared)
    return good


def refused(req, app):
    """Why a request that needs the admin is refused, as (status, text): 403 before
    a password is set, 401 without a session; None if it may go on."""
    if not app.cfg["admin"]["password_hash"]:
        return 403, "set the admin password first (POST /api/v1/password)"
    if not ok(req, app):
        return 401, "login required"
    return None


def new_session(app):
    t = hexlify(os.urandom(16)).decode()
    s = getattr(app, "sessions", None)
    if s is None:
        s = app.sessions = []
    s.append(t)
    if len(s) > _SESSIONS:
        s.pop(0)
    return t


def end_session(req, app):
    t = token_of(req)
    s = getattr(app, "sessions", [])
    if t in s:
        s.remove(t)


def wait_s(app):
    """Seconds before another login may be tried (0: now)."""
    f = getattr(app, "login_fails", None)
    if not f or f[0] < _FREE:
        return 0
    d = ticks_diff(f[1], ticks_ms())
    return (d + 999) // 1000 if d > 0 else 0


def failed(app, yes):
    """Count a failed login (yes) or forget the failures (a good one)."""
    if not yes:
        app.login_fails = None
        return
    f = getattr(app, "login_fails", None) or [0, ticks_ms()]
    f[0] += 1
    if f[0] >= _FREE:
        f[1] = ticks_add(ticks_ms(), min(1000 << min(f[0] - _FREE, 9), 300000))
    app.login_fails = f
