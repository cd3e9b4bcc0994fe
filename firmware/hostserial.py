"""Meter sources of the host board that are file descriptors: a serial device
(a USB P1 cable), a pty, stdin. Imported by `HostBoard.open_meter` for such a
source. CPython reads them through the loop's add_reader; MicroPython's Unix
port polls the file itself (its asyncio polls any object with a file
descriptor), with the tty in raw mode and VMIN=0 so that a read returns what
has arrived instead of waiting for a full buffer.
"""

import asyncio
import errno
import os


def open_fd(source, uart):
    """An async byte source for a device path or "-"/"stdin"; raises OSError."""
    if not hasattr(asyncio.get_event_loop(), "add_reader"):  # MicroPython
        return _stream(source)
    if source in ("-", "stdin"):
        os.set_blocking(0, False)
        return FdSource(0, "stdin", own=False)
    fd = os.open(source, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        serial_setup(fd, uart)
    except Exception:
        os.close(fd)
        raise
    return FdSource(fd, source)


class FdSource:
    """A non-blocking file descriptor (pty, serial device, stdin) on the loop."""

    def __init__(self, fd, name, own=True):
        self.fd = fd
        self.name = name
        self.reconnect = own  # a device can come back; stdin cannot
        self._own = own

    async def read(self, n):
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.read(self.fd, n)
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno == errno.EIO:  # pty peer closed / device gone
                    return b""
                raise
            fut = loop.create_future()

            def ready(f=fut):
                if not f.done():
                    f.set_result(None)

            loop.add_reader(self.fd, ready)
            try:
                await fut
            finally:
                loop.remove_reader(self.fd)

    def close(self):
        if self._own:
            try:
                os.close(self.fd)
            except OSError:
                pass


def serial_setup(fd, uart):
    """Raw mode, baud and frame format of a tty (a pty accepts and ignores them)."""
    import termios

    try:
        a = termios.tcgetattr(fd)
    except termios.error:
        return  # a FIFO or similar: nothing to set
    speed = getattr(termios, "B%d" % uart.get("baud", 115200), termios.B115200)
    cflag = termios.CREAD | termios.CLOCAL
    cflag |= termios.CS7 if uart.get("bits") == 7 else termios.CS8
    parity = uart.get("parity")
    if parity is not None:
        cflag |= termios.PARENB | (termios.PARODD if parity == 1 else 0)
    if uart.get("stop") == 2:
        cflag |= termios.CSTOPB
    a[0] = termios.IGNBRK | (termios.INPCK | termios.ISTRIP if parity is not None else 0)
    a[1] = 0
    a[2] = cflag
    a[3] = 0
    a[4] = a[5] = speed
    a[6][termios.VMIN] = 0
    a[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)


def _stream(source):
    import sys
    import termios

    f = sys.stdin.buffer if source in ("-", "stdin") else open(source, "rb")
    fd = f.fileno()
    try:
        termios.setraw(fd)
        a = termios.tcgetattr(fd)
        a[6][6] = 0  # VMIN: a read returns what is there
        a[6][5] = 0  # VTIME
        termios.tcsetattr(fd, termios.TCSANOW, a)
    except OSError:  # not a tty (a FIFO): nothing to set
        pass
    s = asyncio.StreamReader(f)  # pyright: ignore[reportCallIssue]
    s.reconnect = source not in ("-", "stdin")  # a device can come back; stdin cannot
    s.name = source
    return s
