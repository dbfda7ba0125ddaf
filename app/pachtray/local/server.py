"""`pachtray local-pachd`: the embedded Pachyderm-compatible gRPC server (pfs, version, admin, auth, health,
and the pps answers of a cluster without pipelines)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import uuid
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pachyderm_sdk.api import admin, auth, pfs, pps, version

from pachtray import malloc
from pachtray.local.auth_service import AuthOff, AuthOn
from pachtray.local.pfs_service import PfsService
from pachtray.local.pps_service import PpsService
from pachtray.local.rpc import generic_handler
from pachtray.local.store import Store

log = logging.getLogger("pachtray.local")

# The pachd release whose API this server speaks (clients compare versions).
VERSION = version.Version(major=2, minor=8, micro=10, additional="pachtray", platform="linux")
MAX_MESSAGE = 64 * 1024 * 1024


class VersionService:
    def GetVersion(self, req, ctx) -> version.Version:
        return VERSION


class AdminService:
    def __init__(self, cluster_id: str):
        self.cluster_id = cluster_id

    def InspectCluster(self, req: admin.InspectClusterRequest, ctx) -> admin.ClusterInfo:
        return admin.ClusterInfo(id=self.cluster_id, deployment_id=self.cluster_id, warnings_ok=True)


class LocalServer:
    """A running server; ``stop()`` ends it, ``wait()`` blocks until it has ended."""

    def __init__(self, data_dir: str | Path, host: str, port: int, auth_enabled: bool, root_token: str | None):
        self.store = Store(data_dir)
        self.auth = AuthOn(self.store, root_token, host) if auth_enabled else AuthOff()
        cluster_id = (Path(data_dir) / "cluster-id")  # (daemon.local_server.CLUSTER_ID_FILE)
        if not cluster_id.exists():
            cluster_id.write_text(uuid.uuid4().hex)
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="local-pachd"),
            options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                     ("grpc.max_send_message_length", MAX_MESSAGE),
                     ("grpc.so_reuseport", 0)],
        )
        before = self.auth.authenticate
        self.server.add_generic_rpc_handlers((
            generic_handler(pfs.ApiBase, PfsService(self.store, self.auth), before),
            generic_handler(version.ApiBase, VersionService()),
            generic_handler(admin.ApiBase, AdminService(cluster_id.read_text().strip())),
            generic_handler(auth.ApiBase, self.auth, before),
            generic_handler(pps.ApiBase, PpsService(), before),
        ))
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        try:
            bound = self.server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        except RuntimeError:
            bound = 0
        if not bound:
            self.store.close()
            raise OSError(f"cannot listen on {host}:{port}")
        self.host = host
        self.port = bound
        self._stopped = threading.Event()

    def start(self) -> "LocalServer":
        self.server.start()
        self.auth.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return self

    def stop(self, grace: float = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.auth.stop()
        self.store.close()
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


def serve(port: int, data_dir: str | Path, host: str = "127.0.0.1", auth: bool = False,
          root_token: str | None = None) -> LocalServer:
    """Start the server in this process (port 0 picks a free one; see ``.port``)."""
    if auth and not root_token:
        raise ValueError("auth mode needs a root token")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return LocalServer(data_dir, host, port, auth, root_token).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pachtray local-pachd",
                                     description="Run the embedded Pachyderm-compatible server in the foreground.")
    parser.add_argument("--port", type=int, default=30650)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--auth", action="store_true", help="activate auth (needs --root-token)")
    parser.add_argument("--root-token", help="the root user's session token in auth mode")
    args = parser.parse_args(argv)
    malloc.limit_arenas()  # before the threads (see pachtray.malloc)
    if args.auth and not args.root_token:
        parser.error("--auth needs --root-token")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = serve(args.port, args.data_dir, args.host, args.auth, args.root_token)
    except OSError as exc:
        print(f"pachtray local-pachd: {exc}", file=sys.stderr)
        return 1
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("serving on %s:%d (data %s, auth %s)", args.host, server.port, args.data_dir,
             "on" if args.auth else "off")
    while not stopping.wait(0.5):
        pass
    log.info("stopping")
    server.stop()
    return 0
