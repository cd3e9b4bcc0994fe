"""Raw telegram server (port 2323): every accepted telegram, byte for byte, to
each connected client, like a ser2net P1 cable.

Strategy: a web.server Server whose connections speak no HTTP: its accept
loop (listening again if it dies), output buffer, write deadlines, hang-up
detection and close serve a client that costs one small task and nothing
else. Each client has its own bounded hub subscription (drops the oldest
telegram when the client falls behind). Each write must drain within
`write_timeout_ms`; a client that does not take its data in time is dropped
(counted as `dropped_slow`), so a stuck peer can never hold memory or stall
anything else; one that hangs up leaves within the server's tick (0.5 s).
"""

import asyncio

from web.server import Request, Server, cold


class RawServer(Server):
    def __init__(self, hub, host, port, max_clients=4, write_timeout_ms=10000):
        Server.__init__(self, None)
        self.hub = hub
        self.host = host
        self.port = port
        self.max_conns = max_clients
        self.write_ms = write_timeout_ms
        self.error = ""
        hub.add_status("raw_tcp", self.status)

    def status(self):
        st = self.stats
        return {
            "port": self.port,
            "listening": bool(self.server),
            "clients": st["conns"],
            "served": st["requests"],
            "refused": st["refused"],
            "dropped_slow": st["timeouts"],
            "error": self.error,
        }

    async def start(self):  # pyright: ignore[reportIncompatibleMethodOverride]
        """Listen on the address given at construction (OSError if it is taken)."""
        try:
            await Server.start(self, self.host, self.port)
        except OSError as e:
            self.error = "listen %s:%d: %s" % (self.host, self.port, e)
            raise

    async def _conn(self, reader, writer):
        """One client: every telegram as it came, until it hangs up or is too
        slow (the server's tick cancels it)."""
        st = self.stats
        r = None
        try:
            if st["conns"] >= self.max_conns:
                st["refused"] += 1
                return
            r = Request(self, reader, writer)
            r.idle = 5  # a stream: the tick watches for the hang-up
            r.deadline = None
            st["conns"] += 1
            st["requests"] += 1
            self._live.append(r)
            try:
                peer = "%s:%s" % writer.get_extra_info("peername")[:2]
            except Exception:  # noqa: BLE001 - (the Unix port gives bytes)
                peer = "?"
            if hasattr(writer, "transport"):  # CPython: small send buffers, so the write deadline sees a stuck peer
                cold("small", writer)
            sub = self.hub.subscribe(4, "raw " + peer)  # 4 telegrams queued; more: the oldest drops
            try:
                while True:
                    await r.send((await sub.get()).raw)
            finally:
                if sub in self.hub.subs:  # (unless the hub found it dead)
                    self.hub.subs.remove(sub)
        except (OSError, asyncio.CancelledError):  # a reset; too slow, hang-up, close()
            pass
        finally:
            await self._end(r, writer)
