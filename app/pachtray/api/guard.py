"""Who may talk to the API: loopback Host names only, and browser Origins on an allow-list.

Any web page the user opens can send requests to localhost. A foreign Host header means DNS
rebinding (a page whose name resolves to 127.0.0.1); a foreign Origin means a cross-site request.
Both get 403, so no page can mount, log in or read through the API. The unix socket cannot be
reached by a browser at all, so its Host is not checked.
"""

from __future__ import annotations

from collections.abc import Iterable

from pachtray.api.routing import Request
from pachtray.errors import ApiError

LOOPBACK_HOSTS = frozenset({"localhost", "localhost.", "127.0.0.1", "::1", "ip6-localhost"})


def host_name(host_header: str) -> str:
    """The host part of a Host header, lower-case, without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def check(req: Request, allowed_origins: Iterable[str]) -> None:
    """Raise ApiError(403) when the request may come from a web page we do not trust."""
    host = req.headers.get("host", "")
    if req.transport == "tcp" and host and host_name(host) not in LOOPBACK_HOSTS:
        raise ApiError(403, f"forbidden: Host {host!r} is not a loopback name")
    origin = req.headers.get("origin")
    if origin is not None and normalize_origin(origin) not in {normalize_origin(o) for o in allowed_origins}:
        raise ApiError(403, f"forbidden: Origin {origin!r} is not allowed "
                            "(add it to the allowed origins in Pachtray's settings)")
