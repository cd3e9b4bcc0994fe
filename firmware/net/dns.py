"""A tiny DNS responder for the captive portal: every name is the dongle
(imported when the access point opens, dropped when it closes; net/wifi.py).

A phone that joins the access point asks DNS for its connectivity check
(connectivitycheck.gstatic.com, captive.apple.com, ...); the answer is our
own address, so the check lands on our HTTP server, which sends the setup
page (web/api.py redirects unknown paths while the access point is up), and
the phone shows it as a sign-in page. One non-blocking UDP socket, polled
every _POLL_MS (MicroPython's asyncio has no datagram endpoint): an A (or
ANY) question gets one A record with `ip`, any other type an empty NOERROR
answer (the client then asks for A); a response, a truncated or otherwise
malformed packet is dropped and counted, never answered.

    task = asyncio.create_task(serve("192.168.4.1", 53, stats))
"""

import asyncio
import socket

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_POLL_MS = const(100)


def answer(q, ip):
    """The reply to query packet `q` (bytes), or None to drop it."""
    if len(q) < 17 or q[2] & 0x80 or q[4:6] != b"\x00\x01":  # short, a response, not one question
        return None
    i = 12
    while q[i]:  # the name's labels (no compression in a question)
        if q[i] & 0xC0:
            return None
        i += q[i] + 1
        if i + 5 > len(q):
            return None
    i += 5  # the zero byte, type, class
    t = q[i - 4] << 8 | q[i - 3]
    a = t == 1 or t == 255  # A or ANY
    head = q[:2] + bytes((0x84 | q[2] & 1, 0x80, 0, 1, 0, 1 if a else 0, 0, 0, 0, 0))
    out = head + q[12:i]
    if a:
        out += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04"  # the name, A, IN, TTL 60 s, 4 bytes
        out += bytes(int(x) for x in ip.split("."))
    return out


async def serve(ip, port=53, stats=None, host="0.0.0.0"):
    """Answer every query on UDP `host`:`port` with `ip` until cancelled.
    stats: a dict, {"answered": n, "dropped": n} kept up to date."""
    st = stats if stats is not None else {}
    st["answered"] = st["dropped"] = 0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(socket.getaddrinfo(host, port)[0][-1])
            s.setblocking(False)
        except OSError as e:  # no captive portal; the address still works
            import log

            log.error("dns: port %d: %s" % (port, e))
            return
        while True:
            try:
                q, addr = s.recvfrom(512)
            except OSError:  # nothing waiting (EAGAIN)
                await asyncio.sleep(_POLL_MS / 1000)
                continue
            try:
                r = answer(q, ip)
            except (IndexError, ValueError):
                r = None
            if r is None:
                st["dropped"] += 1
                continue
            try:
                s.sendto(r, addr)
                st["answered"] += 1
            except OSError:
                st["dropped"] += 1
    finally:
        s.close()
