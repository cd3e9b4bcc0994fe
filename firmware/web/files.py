"""Static files for web.server, cold like web.cold: imported for a call
(`web.server.cold("static", req, root, name, mod="web.files")`) and dropped
after, so the content types and path checks take RAM only while a file is
being opened (a page load), never while the API is polled.
"""

from web.server import error

# file extension -> content type
_TYPES = (
    "|html text/html; charset=utf-8|js text/javascript; charset=utf-8|mjs text/javascript; charset=utf-8"
    "|css text/css; charset=utf-8|json application/json|svg image/svg+xml|png image/png|ico image/x-icon"
    "|txt text/plain; charset=utf-8|webmanifest application/manifest+json|"
)


def file(req, path, ctype, extra=""):
    """A response streaming `path` from flash, or its pre-gzipped sibling
    `path.gz` when the client accepts gzip; a 404 error when neither opens.
    A bundle (tools/bundle.py) ships only the .gz: a client without gzip gets
    it unpacked on the way (chunked: its length is not known beforehand)."""
    gz = "gzip" in req.headers.get("accept-encoding", "")
    if gz:
        try:
            return 200, ctype, open(path + ".gz", "rb"), "Content-Encoding: gzip\r\n" + extra
        except OSError:
            pass
    try:
        return 200, ctype, open(path, "rb"), extra
    except OSError:
        pass
    if not gz:
        try:
            return 200, ctype, _gunzip(path + ".gz"), extra
        except OSError:
            pass
    return error(404, "not found")  # (its text given: web.cold is not imported as well)


def _gunzip(path):
    """The pieces of a gzip file unpacked (raises OSError if it does not open).
    The bundle's window is 1 KiB (tools/bundle.py GZIP_WBITS), so is RAM's here."""
    f = open(path, "rb")
    try:
        import deflate

        z = deflate.DeflateIO(f, deflate.GZIP, 10, True)  # type: ignore[attr-defined]
    except ImportError:  # CPython
        import gzip

        z = gzip.GzipFile(fileobj=f)
    return _pieces(z, f)


def _pieces(z, f):
    try:
        while True:
            b = z.read(512)
            if not b:
                return
            yield b
    finally:
        z.close()
        f.close()


def content_type(path):
    """The content type for a file name (by its extension; "x.js.gz" is a js file)."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext == "gz":
        ext = path[:-3].rsplit(".", 1)[-1].lower()
    i = _TYPES.find("|" + ext + " ") if ext else -1
    if i < 0:
        return "application/octet-stream"
    i += len(ext) + 2
    return _TYPES[i : _TYPES.find("|", i)]


def static(req, root, name):
    """The response for the file `root`/`name` (file(), cached for a minute), or
    400 when `name` is not a safe plain relative path."""
    if not name or len(name) > 64 or name[0] == "/" or "\\" in name:
        return error(400, "bad path")
    for part in name.split("/"):
        if not part or part[0] == ".":
            return error(400, "bad path")
    return file(req, root + "/" + name, content_type(name), "Cache-Control: max-age=60\r\n")
