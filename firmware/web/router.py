"""A router for apps of web.server (its tests, small apps); web.api tells its
few paths apart by itself, which takes less RAM than a function per route.

    srv = Server(router({"/": index, "/api": {"GET": get, "POST": post}}, (("/static/", static),)))
"""

from web.server import error


def router(routes, prefixes=()):
    """A handler dispatching on the path.

    routes: {path: handler} (GET and HEAD) or {path: {"GET": h, "POST": h2}};
    prefixes: ((prefix, handler), ...) tried in order for other paths (GET, HEAD).
    Unknown path: 404; a method the path does not take: 405 with Allow.
    """

    def handle(req):  # the route's coroutine itself, or an error response
        m = req.method
        h = routes.get(req.path)
        for p in prefixes:
            if h is None and req.path.startswith(p[0]):
                h = p[1]
        if h is None:
            return error(404)
        a = ("GET", "HEAD")
        if isinstance(h, dict):
            a = h
            h = h.get(m) or m == "HEAD" and h.get("GET")
        elif m not in a:
            h = None
        return h(req) if h else error(405, None, "Allow: %s\r\n" % ", ".join(a))

    return handle
