"""The `host` board: a PC, under CPython or the MicroPython Unix port. The meter
is a file, a pty or serial device, a TCP stream (`tcp://HOST:PORT`) or stdin;
pins are remembered and printed. Never imported on the device.
"""

import asyncio
import os

from board import Board


class FileSource:
    """A recorded capture: read once, then end of stream."""

    def __init__(self, path):
        self.name = path
        self.reconnect = False
        self._f = open(path, "rb")

    async def read(self, n):
        await asyncio.sleep(0)
        return self._f.read(n)

    def close(self):
        self._f.close()


class TcpSource:
    """A raw P1 stream from a TCP server (ser2net, another dongle, the simulator)."""

    def __init__(self, host, port):
        self.name = "tcp://%s:%d" % (host, port)
        self.reconnect = True
        self._addr = (host, port)
        self._r = None
        self._w = None

    async def read(self, n):
        if self._r is None:  # a refused connection raises: shown as the source error
            self._r, self._w = await asyncio.open_connection(*self._addr)
        try:
            return await self._r.read(n)
        except OSError:  # reset by the peer: the stream ended
            return b""

    def close(self):
        if self._w is not None:
            self._w.close()
            self._w = None
            self._r = None


def parse_tcp(source):
    """'tcp://HOST:PORT' -> (host, port); ValueError otherwise."""
    rest = source[len("tcp://") :].rstrip("/")
    host, _, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected tcp://HOST:PORT, got %r" % source)
    return host, int(port)


class HostBoard(Board):
    # No updates unless run from an installed copy (`p1tool.py run --ota DIR`: DIR/);
    # then reset() ends the process with this exit code and the runner starts it again.
    ota_root = ""
    reset_exit = 0

    def __init__(self, spec, errors=None):
        Board.__init__(self, spec, errors)
        self._reset = "host"
        self.led_on = False
        self.data_request_on = False
        self.relays = {}

    def open_meter(self, source=""):
        """An async byte source for `source`; raises OSError/ValueError if unusable."""
        if not source:
            raise ValueError("no meter source configured (meter.source)")
        if source.startswith("tcp://"):
            return TcpSource(*parse_tcp(source))
        if source not in ("-", "stdin") and os.stat(source)[0] & 0o170000 == 0o100000:
            return FileSource(source)  # a regular file: a recorded capture
        from hostserial import open_fd  # ptys, serial devices, stdin: CPython

        return open_fd(source, self.spec.get("uart") or {})

    def _restart(self):
        import log

        if not self.reset_exit:
            return log.error("host board: a device would reset now")
        log.warn("host board: reset (exit %d, started again)" % self.reset_exit)
        import sys

        sys.stdout.flush()
        try:
            os._exit(self.reset_exit)  # pyright: ignore[reportAttributeAccessIssue]  # CPython: at once, as a reset
        except AttributeError:  # MicroPython: through the event loop (nothing catches SystemExit)
            raise SystemExit(self.reset_exit)

    def data_request(self, on):
        self.data_request_on = bool(on)

    def led(self, on):
        self.led_on = bool(on)

    def relay(self, i, on):
        self.relays[i] = bool(on)
        print("relay %d %s" % (i, "on" if on else "off"))

    def mac_hex(self):
        """The first network interface's MAC (Linux sysfs; uuid elsewhere on CPython)."""
        try:
            for name in sorted(os.listdir("/sys/class/net")):
                if name == "lo":
                    continue
                with open("/sys/class/net/%s/address" % name) as f:
                    mac = f.read().strip().replace(":", "")
                if len(mac) == 12 and mac != "000000000000":
                    return mac
        except OSError:
            pass
        try:
            import uuid  # CPython on other systems; MicroPython has no uuid

            return "%012x" % uuid.getnode()
        except ImportError:
            return "000000000000"

    def device_id(self):
        """`host-<hostname>`: a PC has no single MAC worth naming the dongle after."""
        name = hostname().split(".")[0].lower()
        return "host-" + ("".join(c if c.isalpha() or c.isdigit() or c == "-" else "-" for c in name) or "pc")


def hostname():
    """This machine's name, the same under CPython and MicroPython (no gethostname there)."""
    try:
        with open("/proc/sys/kernel/hostname") as f:
            return f.read().strip()
    except OSError:
        pass
    try:
        import socket

        return socket.gethostname()  # pyright: ignore[reportAttributeAccessIssue]
    except (ImportError, AttributeError):
        return "pc"
