"""The daemon: REST API + FUSE mounts + the cluster connection (+ the embedded local server).

Its rooms: cli (flags and the run), app (DaemonApp, the handlers' contract), connection (the
cluster, its health, the last cluster used), login (OIDC), local_server (the embedded server as
a child), health (probing a pachd).
"""

from pachtray.daemon.app import DaemonApp
from pachtray.daemon.cli import daemon_main, mount_server_main, parse_bool
from pachtray.daemon.connection import decode_server_cas

__all__ = ["DaemonApp", "daemon_main", "decode_server_cas", "mount_server_main", "parse_bool"]
