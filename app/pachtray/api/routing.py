"""A tiny router: one handler per (method, path), documented for /openapi.json. A path is exact,
or has `{param}` segments, each matching one percent-decoded segment (Request.params)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote

from pachtray.errors import ApiError


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    transport: str = "tcp"  # "tcp" or "unix"
    params: dict[str, str] = field(default_factory=dict)  # a templated route's `{param}` segments

    def json(self) -> Any:
        """The body as JSON; 400 with the parser's reason when it is not JSON."""
        if not self.body.strip():
            raise ApiError(400, "request body is empty; expected JSON")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "request body is not UTF-8 text") from None
        try:
            return json.loads(text)
        except ValueError as e:
            raise ApiError(400, f"request body is not valid JSON: {e}") from None
        except RecursionError:
            raise ApiError(400, "request body is nested too deeply") from None

    def json_object(self) -> dict:
        """The body as a JSON object (400 otherwise)."""
        value = self.json()
        if not isinstance(value, dict):
            raise ApiError(400, f"request body must be a JSON object, got {_json_type(value)}")
        return value


@dataclass
class Response:
    """A handler's answer when it is not simply a JSON value (status 200)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def json(cls, value: Any, status: int = 200) -> "Response":
        return cls(status, encode_json(value))

    @classmethod
    def text(cls, message: str, status: int) -> "Response":
        return cls(status, (message.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8")


def encode_json(value: Any) -> bytes:
    """JSON as Go's encoder with SetEscapeHTML(false) writes it: compact, no HTML escaping, trailing newline."""
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


Handler = Callable[[Request, Any], Any]
PACHTRAY_PREFIX = "/pachtray/"


def is_reference_route(path: str) -> bool:
    """A route of the drop-in (Pachyderm's mount-server's API), not one of Pachtray's own: it
    answers failures as the reference does (pfs.errors.to_api_error)."""
    return not path.startswith(PACHTRAY_PREFIX)


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body_schema: dict | None
    response_schema: dict | None
    requires: str  # "": nothing; "cluster": a connection (else 404); "auth": also a signed-in user (else 401)
    pattern: re.Pattern | None = None  # for a path with `{param}` segments


def _pattern(path: str) -> re.Pattern | None:
    if "{" not in path:
        return None
    parts = (f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") and p.endswith("}") else re.escape(p)
             for p in path.split("/"))
    return re.compile("/".join(parts))


class Router:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}

    def add(self, method: str, path: str, handler: Handler, summary: str = "", body_schema: dict | None = None,
            response_schema: dict | None = None, requires: str = "") -> None:
        key = (method.upper(), path)
        if key in self.routes:
            raise ValueError(f"route {method} {path} is already registered")
        if requires not in ("", "cluster", "auth"):
            raise ValueError(f"route {method} {path}: unknown requirement {requires!r}")
        self.routes[key] = Route(key[0], path, handler, summary, body_schema, response_schema, requires,
                                 _pattern(path))

    def match(self, method: str, path: str, params: dict[str, str] | None = None) -> Route:
        """The route for a request, or ApiError 404 (no such path) / 405 (path exists, other method);
        a templated route's segments go into ``params``."""
        path = path.rstrip("/") or "/"
        route = self.routes.get((method.upper(), path))
        if route:
            return route
        found = {}
        for r in self.routes.values():
            if r.pattern is not None and (m := r.pattern.fullmatch(path)):
                found[r.method] = (r, m)
        if method.upper() in found:
            route, m = found[method.upper()]
            if params is not None:
                params.update({k: unquote(v) for k, v in m.groupdict().items()})
            return route
        allowed = sorted(m for (m, p) in self.routes if p == path) or sorted(found)
        if allowed:
            raise ApiError(405, f"method {method} not allowed on {path} (allowed: {', '.join(allowed)})")
        raise ApiError(404, f"no such endpoint: {path}")
