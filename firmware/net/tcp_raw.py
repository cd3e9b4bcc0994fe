"""Raw telegram server (port 2323): every accepted telegram, byte for byte, to
each connected client, like a ser2net P1 cable.

Strategy: one task per client with its own bounded hub subscription (drops
the oldest telegram when the client falls behind). Each write must drain
within `write_timeout_ms`; a client that does not take its data in time is
dropped, so a stuck peer can never hold memory or stall anything else.
"""

import asyncio

from aio import watch_eof

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_QUEUE = const(4)  # telegrams queued per client
_SNDBUF = const(4096)  # CPython: kernel/transport buffer, so a stuck client shows soon
_CLOSE_S = const(2)  # seconds a closing client may take to flush


class RawServer:
    def __init__(self, hub, host, port, max_clients=4, write_timeout_ms=10000):
        self.hub = hub
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.write_timeout_ms = write_timeout_ms
        self.server = None
        self.clients = 0
        self.served = 0
        self.refused = 0
        self.dropped_slow = 0
        self.error = ""
        hub.add_status("raw_tcp", self.status)

    def status(self):
        return {
            "port": self.port,
            "listening": self.server is not None,
            "clients": self.clients,
            "served": self.served,
            "refused": self.refused,
            "dropped_slow": self.dropped_slow,
            "error": self.error,
        }

    async def start(self):
        try:
            self.server = await asyncio.start_server(self._client, self.host, self.port)
        except OSError as e:
            self.error = "listen %s:%d: %s" % (self.host, self.port, e)
            raise
        return self.server

    def close(self):
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _client(self, reader, writer):
        if self.clients >= self.max_clients:
            self.refused += 1
            await _close(writer)
            return
        self.clients += 1
        self.served += 1
        _small_buffers(writer)
        try:
            peer = "%s:%s" % writer.get_extra_info("peername")[:2]
        except Exception:  # noqa: BLE001
            peer = "?"
        sub = self.hub.subscribe(_QUEUE, "raw " + peer)
        timeout = self.write_timeout_ms / 1000
        slow = False
        me = asyncio.current_task()
        watcher = asyncio.create_task(watch_eof(reader, me))
        try:
            while True:
                s = await sub.get()
                writer.write(s.raw)
                await asyncio.wait_for(writer.drain(), timeout)
        except asyncio.TimeoutError:
            self.dropped_slow += 1
            slow = True
        except asyncio.CancelledError:  # peer hung up (or shutdown): do not flush
            slow = True
        except Exception:  # noqa: BLE001 - peer gone (reset, broken pipe): just end
            pass
        finally:
            watcher.cancel()
            self.hub.unsubscribe(sub)
            self.clients -= 1
            await _close(writer, slow)


def _small_buffers(writer):
    """CPython only: small send buffers, so the write deadline sees a stuck peer."""
    try:
        import socket

        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUF"), _SNDBUF)
        writer.transport.set_write_buffer_limits(high=_SNDBUF)
    except Exception:  # noqa: BLE001 - MicroPython: lwIP's buffers are small already
        pass


async def _close(writer, abort=False):
    """Close a client; never wait long for a peer that does not take its data."""
    t = getattr(writer, "transport", None)
    try:
        if abort and t is not None:  # CPython: do not wait to flush to a stuck peer
            t.abort()
            return
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_S)
    except asyncio.TimeoutError:
        if t is not None:
            t.abort()
    except Exception:  # noqa: BLE001
        pass
