"""Plain HTTP to servers on this machine (the daemon, Jupyter) over TCP or a unix socket.

The standard library only, so the command line starts fast and the daemon needs nothing more.
"""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit


class Unreachable(OSError):
    """Nothing answered (refused, timed out, no such socket)."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX; the Host header is `localhost`, as curl --unix-socket sends it."""

    def __init__(self, sock_path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.sock_path = sock_path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.sock_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def request(method: str, url: str, *, sock_path: str = "", body=None, headers: dict | None = None,
            timeout: float = 30.0) -> tuple[int, bytes]:
    """(status, body) of one request; `url` gives the path (and host when there is no `sock_path`).

    A JSON-able `body` is sent as JSON. Raises Unreachable when nothing answers.
    """
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if sock_path:
        conn = UnixHTTPConnection(sock_path, timeout)
    elif parts.scheme == "https":
        import ssl

        # Only ever loopback servers (a local Jupyter with its own self-signed certificate).
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout,
                                           context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as e:
        where = sock_path or f"{parts.hostname}:{parts.port}"
        reason = "timed out" if isinstance(e, TimeoutError) else (getattr(e, "strerror", None) or str(e)
                                                                   or type(e).__name__)
        raise Unreachable(f"nothing answers on {where} ({reason})") from None
    finally:
        conn.close()
