"""POST /api/v1/update[?force=1][&reboot=0][&trial_s=N]: a bundle
(tools/bundle.py's tar) streamed onto flash (cold: web.api imports it for the
request, drops it after; docs/UPDATE.md).

The body is read through one 512-byte buffer (a tar block): a tar header,
then the member's data, written to R/stage/<path> while its SHA-256 is
computed; the bundle is never in RAM. The first member must be manifest.json;
it is written to the stage too and read back one line per member (tools/bundle.py
writes one file entry a line, in the tar's order), so the manifest is not in
RAM either. Refused, the stage removed, the rest of the body read and dropped,
with a JSON error: no admin session (401; 403 before a password is set), a
bundle that is not a tar or has no manifest first (400), a truncated upload
(400), a file that is not in the manifest, out of its order, of another size
or SHA-256 or missing (422), another board (422), a version not newer than the
running one without ?force=1 (409), more than the flash has free (413).
Only then the state becomes "staged" (otaboot) and, unless ?reboot=0, the
board resets a second after the answer; boot.py switches to the new version.
"""

import hashlib
import json
import os
from binascii import hexlify

import log
from clock import ticks_add, ticks_ms
from otaboot import load, rmtree, save
from version import VERSION

_BLOCK = 512
MAX_BODY = 4 << 20  # a bundle is ~150 KB; more is refused before it is read


class Refused(Exception):
    """(status, message): why the upload is refused."""


class _Body:
    """The request body after its head: what came with the head, then the socket."""

    def __init__(self, req):
        self.req = req
        self.pre = req.body
        self.left = req.left  # bytes still on the socket
        self.got = 0

    async def fill(self, mv):
        """Fill memoryview `mv` completely, or Refused(400) on a short body."""
        i = 0
        n = len(mv)
        while i < n:
            p = self.pre
            if p:
                k = min(len(p), n - i)
                mv[i : i + k] = p[:k]
                self.pre = p[k:]
            else:
                if self.left <= 0:
                    raise Refused(400, "truncated upload: the bundle ends after %d bytes" % self.got)
                r = self.req
                r.deadline = ticks_add(ticks_ms(), r.srv.read_ms)  # (the server's reaper ends a stalled upload)
                into = getattr(r.reader, "readinto", None)  # MicroPython: no new bytes object per read
                m = mv[i : i + min(n - i, self.left)]
                if into is not None:
                    k = await into(m)
                else:
                    b = await r.reader.read(len(m))
                    k = len(b)
                    m[:k] = b
                r.deadline = None
                if not k:
                    raise Refused(400, "truncated upload: the connection ended after %d bytes" % self.got)
                self.left -= k
            i += k
            self.got += k

    async def drain(self, buf):
        """Read and drop what is left of the body (so that the client gets the answer)."""
        self.pre = b""
        try:
            while self.left > 0:
                await self.fill(memoryview(buf)[: min(len(buf), self.left)])
        except Exception:  # noqa: BLE001 - the client went: nobody to answer
            pass


def _name(hdr):
    """The member's path from its tar header (USTAR prefix included); Refused if unsafe."""
    n = bytes(hdr[0:100]).split(b"\0")[0]
    if bytes(hdr[257:262]) == b"ustar" and hdr[345]:
        n = bytes(hdr[345:500]).split(b"\0")[0] + b"/" + n
    n = n.decode()
    for part in n.split("/"):
        if part in ("", ".", ".."):
            raise Refused(400, "bad member name in the bundle: %r" % n)
    return n


def _size(hdr):
    try:
        return int(bytes(hdr[124:136]).split(b"\0")[0].decode().strip() or "0", 8)
    except ValueError:
        raise Refused(400, "not a tar file")


def _version(v):
    """'1.2.3' -> (1, 2, 3); leading digits of each part count, the rest not."""
    out = []
    for p in str(v).split("."):
        i = 0
        while i < len(p) and "0" <= p[i] <= "9":
            i += 1
        out.append(int(p[:i] or "0"))
    return tuple(out)


def _makedirs(path):
    i = path.find("/", 1)
    while i > 0:
        try:
            os.mkdir(path[:i])
        except OSError:  # there already
            pass
        i = path.find("/", i + 1)


def _free(root):
    """Bytes free on the filesystem of `root`, or None if the port cannot tell."""
    try:
        s = os.statvfs(root or "/")
        return s[0] * s[4]
    except (AttributeError, OSError):
        return None


async def _receive(body, buf, app, args):
    """Read the tar into R/stage; the manifest's header dict. Refused on any problem."""
    root = app.board.ota_root
    stage = root + "stage"
    mv = memoryview(buf)
    man = None  # the manifest file, read one entry a line
    head = None
    try:
        while True:
            await body.fill(mv)
            if not any(buf):  # two zero blocks end a tar
                break
            typ = buf[156]
            name = _name(buf)
            size = _size(buf)
            if typ == 53:  # "5": a folder (not written by tools/bundle.py): made with its files
                continue
            if typ not in (0, 48):  # "0" or NUL: a regular file; anything else (links) refused
                raise Refused(400, "unsupported tar member %s (type %r)" % (name, chr(typ)))
            if head is None:
                if name != "manifest.json":
                    raise Refused(400, "no manifest: the bundle must begin with manifest.json")
                if size > 32768:
                    raise Refused(400, "manifest.json too large")
            else:
                line = man.readline().strip()  # pyright: ignore[reportOptionalMemberAccess]
                if not line.startswith("{"):
                    raise Refused(422, "%s is not in the manifest" % name)
                e = json.loads(line[:-1] if line.endswith(",") else line)
                if e["path"] != name:
                    msg = "%s is not in the manifest or out of its order (expected %s)"
                    raise Refused(422, msg % (name, e["path"]))
                if e["size"] != size:
                    raise Refused(422, "%s: %d bytes, the manifest says %d" % (name, size, e["size"]))
            path = stage + "/" + name
            _makedirs(path)
            h = hashlib.sha256()
            left = size
            with open(path, "wb") as f:
                while left > 0:
                    k = min(left, _BLOCK)
                    await body.fill(mv[:k])
                    h.update(mv[:k])
                    f.write(mv[:k])
                    left -= k
            if size % _BLOCK:
                await body.fill(mv[: _BLOCK - size % _BLOCK])  # the member's padding
            if head is None:
                man = open(path)
                head = _check_head(man, app, args)
            elif hexlify(h.digest()).decode() != e["sha256"]:  # pyright: ignore[reportPossiblyUnbound]
                raise Refused(422, "%s does not match its SHA-256 in the manifest" % name)
        if head is None:
            raise Refused(400, "no manifest: an empty bundle")
        line = man.readline().strip()  # pyright: ignore[reportOptionalMemberAccess]
        if line.startswith("{"):
            e = json.loads(line[:-1] if line.endswith(",") else line)
            raise Refused(422, "%s is missing from the bundle" % e["path"])
        return head
    finally:
        if man is not None:
            man.close()


def _check_head(man, app, args):
    """The manifest's first line (every key but the files): format, board, version, room."""
    try:
        line = man.readline().strip()
        head = json.loads(line[:-1] + "}")
        if man.readline().strip() != '"files": [':
            raise ValueError
    except (ValueError, IndexError):
        raise Refused(400, "manifest.json: not a manifest of tools/bundle.py")
    if head.get("format") != 1:
        raise Refused(400, "manifest.json: format %r, this firmware reads 1" % head.get("format"))
    b = app.board
    if head.get("board") != b.name:
        raise Refused(422, "the bundle is for board %s, this is %s" % (head.get("board"), b.name))
    a = head.get("arch")
    if a != _arch() and _arch():
        raise Refused(422, "the bundle's code is for %s, this board runs %s" % (a, _arch()))
    v = head.get("version")
    if _version(v) <= _version(VERSION) and args.get("force") != "1":
        raise Refused(409, "version %s is not newer than %s (?force=1 installs it anyway)" % (v, VERSION))
    free = _free(b.ota_root)
    if free is not None and head.get("bytes", 0) > free:
        raise Refused(413, "the bundle needs %d bytes, the flash has %d free" % (head["bytes"], free))
    return head


# sys.implementation._mpy >> 10: the native code this MicroPython runs (py/persistentcode.h)
_ARCHS = ("", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa", "xtensawin",
          "rv32imc", "rv64imc")  # fmt: skip


def _arch():
    """What a bundle's "arch" must be here: CPython runs sources ("py"); "" unknown."""
    import sys

    m = getattr(sys.implementation, "_mpy", None)
    if m is None:
        return "py"
    m = (m >> 10) & 15
    return _ARCHS[m] if m < len(_ARCHS) else ""


def _args(qs):
    out = {}
    for part in qs.split("&"):
        k, _, v = part.partition("=")
        if k:
            out[k] = v
    return out


async def handle(req, app):
    """The response to POST /api/v1/update (see above)."""
    from web.server import JSON, cold, error

    if req.method != "POST" or not hasattr(req, "left"):
        return error(405, None, "Allow: POST\r\n")
    buf = bytearray(_BLOCK)
    body = _Body(req)
    why = None
    root = app.board.ota_root
    if body.left + len(body.pre) > MAX_BODY:
        body.left = 0  # (not read: the connection closes)
        why = (413, "a bundle is at most %d bytes" % MAX_BODY)
    elif not cold("ok", req, app, mod="web.auth"):
        why = (403, "set an admin password first") if not app.cfg["admin"]["password_hash"] else (401, "login required")
    elif not root or not _installed(root):
        why = (409, "this firmware was not installed from a bundle (make deploy): no %sapp to update" % root)
    elif getattr(app, "updating", 0):
        why = (409, "another update is being received")
    else:
        s = load(root)
        if s is not None and s["state"] in ("switching", "trial", "rollback"):  # (prev is the good one)
            why = (409, "the update to %s is on trial until it reports healthy" % s["version"])
    if why is not None:
        await body.drain(buf)
        return _error(*why)
    app.updating = 1
    args = _args(req.qs)
    head = None
    try:
        s = load(root)
        if s is not None and s["state"] == "staged":  # an earlier upload waits for its reboot: no more
            s["state"] = "cancelled"
            s["result"] = "replaced by a new upload"
            save(root, s)
        rmtree(root + "stage")
        head = await _receive(body, buf, app, args)
        await body.drain(buf)  # (anything after the tar's end)
        ts = args.get("trial_s", "")
        s = {
            "state": "staged",
            "version": head["version"],
            "previous": VERSION,
            "boots": 0,
            "trial_s": int(ts) if ts.isdigit() and 0 < int(ts) <= 3600 else None,
            "result": "staged, switched to at the next boot",
        }
        save(root, s)
    except Exception as e:  # noqa: BLE001 - Refused, a full flash, a broken manifest line, MemoryError
        rmtree(root + "stage")
        await body.drain(buf)
        st, msg = e.args if isinstance(e, Refused) else (500 if isinstance(e, MemoryError) else 422, repr(e))
        log.warn("update refused: " + msg)
        return _error(st, msg)
    finally:
        app.updating = 0
    reboot = args.get("reboot") != "0"
    log.info("update: %s staged (%d bytes received)%s" % (head["version"], body.got, ", rebooting" if reboot else ""))
    if reboot:
        import asyncio

        asyncio.create_task(_reset(app.board, "update to %s" % head["version"]))
    return 200, JSON, '{"staged": true, "version": %s, "previous": %s, "reboot": %s}' % (
        json.dumps(head["version"]), json.dumps(VERSION), "true" if reboot else "false"), "Cache-Control: no-store\r\n"


def _error(status, msg):
    text = '{"error": %s, "status": %d}' % (json.dumps(msg), status)
    return status, "application/json", text, "Cache-Control: no-store\r\n"


def _installed(root):
    try:
        return os.stat(root + "app")[0] & 0x4000
    except OSError:
        return False


async def _reset(board, reason):
    """Reset a second after the answer went out."""
    from aio import sleep_ms

    await sleep_ms(1000)
    board.reset(reason)
