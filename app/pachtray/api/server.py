"""HTTP on 127.0.0.1 (+ ::1) and a unix socket at once, one app behind both.

stdlib `http.server` keeps the daemon free of web-framework dependencies; every request runs in its
own thread so a slow mount never blocks /health. Never binds a non-loopback address.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import socketserver
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pachtray import tokens
from pachtray.api import guard
from pachtray.api.routing import Request, Response, Route, Router, is_reference_route
from pachtray.errors import ApiError
from pachtray.pfs import errors

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024


class BindError(RuntimeError):
    """The API cannot listen where it was asked to; the message says why and what to do."""


def dispatch(app: Any, router: Router, req: Request) -> Response:
    """Run one request through the guard, the route's requirements and its handler."""
    route = None
    try:
        guard.check(req, app.settings.allowed_origins)
        route = router.match(req.method, req.path, req.params)
        if route.requires:
            app.check_access(route.requires)
        result = route.handler(req, app)
        return result if isinstance(result, Response) else Response.json(result)
    except ApiError as e:
        return _failed(app, route, Response.text(tokens.redact(e.message), e.status))
    except Exception as e:  # noqa: BLE001 - the client gets one line, the log the traceback
        if errors.unwrap(e) is not None:  # pachd's failure, in the table of the route's kind
            mapped = errors.to_api_error(e, reference=is_reference_route(req.path))
            return _failed(app, route, Response.text(tokens.redact(mapped.message), mapped.status))
        log.exception("%s %s failed", req.method, req.path)
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return _failed(app, route, Response.text(tokens.redact(f"internal error: {first_line}"), 500))


def _failed(app: Any, route: Route | None, resp: Response) -> Response:
    """A failed action (a PUT route past the guard) goes in the activity log, once, here, whoever
    asked (the GUI, JupyterLab, a script)."""
    activity = getattr(app, "activity", None)
    if activity is not None and route is not None and route.method == "PUT":
        name = route.path.rsplit("/", 1)[-1].strip("_").replace("_", " ")
        activity.record("error", f"{name.capitalize() or 'Action'} failed", resp.body.decode().strip())
    return resp


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pachtray"
    timeout = 300  # an idle keep-alive connection frees its thread after this

    head_only = False

    def _serve(self) -> None:
        srv = self.server
        url = urlsplit(self.path)
        body = b""
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                raise ApiError(411, "chunked request bodies are not supported; send Content-Length")
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                raise ApiError(400, "invalid Content-Length header") from None
            if length < 0:
                raise ApiError(400, "invalid Content-Length header")
            if length > MAX_BODY:
                raise ApiError(413, f"request body too large ({length} bytes; at most {MAX_BODY})")
            body = self.rfile.read(length) if length else b""
        except ApiError as e:
            self.close_connection = True
            self._send(Response.text(e.message, e.status))
            return
        req = Request(method="GET" if self.head_only else self.command, path=url.path or "/", query=dict(parse_qsl(url.query)),
                      headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                      transport=srv.transport)
        self._send(dispatch(srv.app, srv.router, req))

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def do_HEAD(self) -> None:
        self.head_only = True
        self._serve()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol errors (bad request line, huge headers, ...) in plain text like every other error."""
        self.close_connection = True
        self._send(Response.text(message or self.responses.get(code, ("error",))[0], code))

    def _send(self, resp: Response) -> None:
        self._status = resp.status
        if resp.status >= 400:
            self._log_failure(resp)
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not self.head_only and self.command != "HEAD":
            self.wfile.write(resp.body)

    def _log_failure(self, resp: Response) -> None:
        """One log line per failed request: method, route (no query string) and the message sent."""
        route = urlsplit(getattr(self, "path", "") or "").path or "-"  # unset when the request line was unreadable
        message = " | ".join(line.strip() for line in resp.body.decode("utf-8", "replace").splitlines() if line.strip())
        log.log(logging.WARNING if resp.status >= 500 else logging.INFO, "%s %s %s -> %d: %s", self.server.transport,
                getattr(self, "command", None) or "-", tokens.redact(route), resp.status, tokens.redact(message))

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        path = urlsplit(getattr(self, "path", "") or "").path  # unset when the request line was unreadable
        log.debug("%s %s %s -> %s", self.server.transport, self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.info("%s: %s", self.server.transport, tokens.redact(format % args))

    def version_string(self) -> str:
        return self.server_version

    def address_string(self) -> str:
        return self.client_address[0] if self.client_address else "unix"


def _log_handler_error(request: Any, client_address: Any) -> None:
    if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
        log.debug("client hung up before its answer was sent")  # e.g. a long-poll given up
        return
    log.exception("error while serving a request")


class _TcpServer(ThreadingHTTPServer):
    daemon_threads = True
    transport = "tcp"
    handle_error = staticmethod(_log_handler_error)

    def __init__(self, addr: tuple[str, int], family: int, app: Any, router: Router):
        self.address_family = family
        self.app, self.router = app, router
        super().__init__(addr, _Handler, bind_and_activate=False)
        if family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), slow and pointless on loopback.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    transport = "unix"
    handle_error = staticmethod(_log_handler_error)

    def __init__(self, path: str, app: Any, router: Router):
        self.app, self.router = app, router
        old = os.umask(0o177)  # the socket file is born 0600: no window where others may connect
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)


def answers_health(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a Pachtray (or reference) mount-server answers /health on this port."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return resp.status == 200 and json.loads(resp.read() or b"{}").get("status") == "running"
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse when something is still listening on it."""
    p = Path(path)
    try:
        st = p.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(f"cannot serve on {path}: it exists and is not a socket; remove it or choose another --sock-path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except OSError as e:
        if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise BindError(f"cannot check socket {path}: {e.strerror}") from e
        log.info("removing stale socket %s (its server is gone)", path)
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        return
    finally:
        probe.close()
    raise BindError(f"socket {path} is in use by another running server (a mount-server or Pachtray daemon?); "
                    "stop it or choose another --sock-path")


class ApiServer:
    """The API on TCP loopback (``port``, None = no TCP) and a unix socket (``sock_path``, "" = none)."""

    def __init__(self, app: Any, router: Router, *, port: int | None, sock_path: str = ""):
        self.app, self.router = app, router
        self.port, self.sock_path = port, sock_path
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self._sock_ino: int | None = None

    @property
    def endpoints(self) -> list[str]:
        out = []
        for s in self._servers:
            if isinstance(s, _UnixServer):
                out.append(f"unix:{self.sock_path}")
            else:
                host, port = s.server_address[:2]
                out.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
        return out

    def start(self) -> None:
        """Bind everything or nothing; raises BindError with what to do."""
        try:
            self._bind()
        except BaseException:
            self.stop()
            raise
        for srv in self._servers:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.25},
                                 name=f"api-{srv.transport}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("API listening on %s", ", ".join(self.endpoints))

    def _bind(self) -> None:
        if self.port is not None:
            try:
                self._servers.append(_TcpServer(("127.0.0.1", self.port), socket.AF_INET, self.app, self.router))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise BindError(f"cannot listen on 127.0.0.1:{self.port}: {e.strerror}") from e
                if not (self.sock_path and answers_health(self.port)):
                    raise BindError(f"port {self.port} on 127.0.0.1 is in use by another program; "
                                    "stop it or choose another port (--port)") from e
                log.warning("port %d is served by another mount-server; serving only the socket %s",
                            self.port, self.sock_path)
            else:
                self.port = self._servers[0].server_address[1]  # the one chosen when asked for port 0
                if socket.has_ipv6:
                    try:
                        self._servers.append(_TcpServer(("::1", self.port), socket.AF_INET6, self.app, self.router))
                    except OSError as e:
                        log.info("not serving on [::1]:%d: %s", self.port, e.strerror)
        if self.sock_path:
            clear_stale_socket(self.sock_path)
            Path(self.sock_path).parent.mkdir(parents=True, exist_ok=True)
            try:
                srv = _UnixServer(self.sock_path, self.app, self.router)
            except OSError as e:
                raise BindError(f"cannot listen on socket {self.sock_path}: {e.strerror}") from e
            self._servers.append(srv)
            self._sock_ino = os.stat(self.sock_path).st_ino
        if not self._servers:
            raise BindError("nothing to serve on: no TCP port and no socket path")

    def stop(self) -> None:
        for srv, t in zip(self._servers, self._threads):
            srv.shutdown()
            t.join(10)
        for srv in self._servers:
            srv.server_close()
        self._servers, self._threads = [], []
        if self.sock_path and self._sock_ino is not None:
            # Only our own socket: another server may have replaced it meanwhile.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.sock_path).st_ino == self._sock_ino:
                    os.unlink(self.sock_path)
            self._sock_ino = None



def build_router() -> Router:
    """Every route: the mount-server API, Pachtray's own, and the GUI's extras when present."""
    import importlib

    from pachtray.api import routes_auth, routes_cluster, routes_datums, routes_mounts, routes_repro, routes_review

    router = Router()
    for module in (routes_cluster, routes_mounts, routes_datums, routes_auth, routes_repro, routes_review):
        module.register(router)
    try:
        extras = importlib.import_module("pachtray.api.extras")
    except ModuleNotFoundError as e:
        if e.name != "pachtray.api.extras":
            raise
    else:
        extras.register(router)
    return router
