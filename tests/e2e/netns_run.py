"""Run a command inside a fresh network namespace (start it with `unshare --net`): bring the
loopback interface up, forward localhost:PORT to a unix socket, run the command, pass on
SIGTERM/SIGINT and exit with its status.

Usage: unshare --net python netns_run.py --forward PORT=/path/to.sock [...] -- command args...
"""

from __future__ import annotations

import argparse
import fcntl
import signal
import socket
import struct
import subprocess
import threading


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


class Forwarder:
    """Accepts on `listen` and copies bytes both ways to a new connection to `target`.

    Addresses are `("unix", path)` or `("tcp", host, port)`.
    """

    def __init__(self, listen: tuple, target: tuple):
        self.target = target
        self.server = _open_listener(listen)
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"forward {listen}->{target}")

    def start(self) -> "Forwarder":
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = _connect(self.target)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self.server.close()
        for s in self._conns:
            s.close()


def _open_listener(addr: tuple) -> socket.socket:
    if addr[0] == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(addr[1])
    else:
        family = socket.AF_INET6 if ":" in addr[1] else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr[1], addr[2]))
    s.listen(64)
    return s


def _connect(addr: tuple) -> socket.socket:
    if addr[0] == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr[1])
        return s
    return socket.create_connection((addr[1], addr[2]), timeout=30)


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """`ip link set lo up` without needing iproute2: a new namespace starts with lo down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifreq)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--forward", action="append", default=[], metavar="PORT=UNIX_PATH")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given")

    loopback_up()
    for spec in args.forward:
        port, path = spec.split("=", 1)
        Forwarder(("tcp", "127.0.0.1", int(port)), ("unix", path)).start()
        try:
            Forwarder(("tcp", "::1", int(port)), ("unix", path)).start()
        except OSError:
            pass  # no IPv6 loopback: clients fall back to 127.0.0.1

    child = subprocess.Popen(command)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    return child.wait()


if __name__ == "__main__":
    raise SystemExit(main())
