"""`pachtray daemon` and `mount-server`: flags, logging, the data-dir lock, and the run itself.

`pachtray daemon` uses the app's defaults (settings file, embedded local server when no cluster
is configured, the saved workspace restored); `mount-server` is the drop-in for Pachyderm's binary
that jupyterlab-pachyderm spawns (reference defaults: no local server, starts with no mounts, the
workspace only with --restore-mounts). Both serve TCP on loopback and a unix socket.

The API answers /health as soon as it listens; everything slower (FUSE, starting the local
server, restoring mounts) happens after, and requests that need it wait for it briefly.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from pachtray import __version__, config, frozen, malloc, tokens
from pachtray.api.server import ApiServer, BindError
from pachtray.daemon.app import DaemonApp
from pachtray.daemon.local_server import LOCAL_PACHD_PORT
from pachtray.pfs.client import parse_address

log = logging.getLogger(__name__)


def parse_bool(text: str) -> bool:
    """Go-style booleans, as the reference's `--allow-other=false`."""
    value = str(text).strip().lower()
    if value in ("1", "t", "true", "yes", "y", "on"):
        return True
    if value in ("0", "f", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser(mode: str, settings: config.Settings) -> argparse.ArgumentParser:
    daemon = mode == "daemon"
    p = argparse.ArgumentParser(
        prog="pachtray daemon" if daemon else "mount-server",
        description=("Pachtray's daemon: FUSE mounts, the mount-server REST API and the embedded local server."
                     if daemon else "Pachtray's drop-in for Pachyderm's mount-server (jupyterlab-pachyderm)."))
    # The default is worked out only when no --mount-dir is given: it looks at /pfs, which may be
    # a dead FUSE mount this very start is about to clean.
    p.add_argument("--mount-dir", default=None,
                   help="folder where repos are mounted (default: %s)" % (
                       "the app setting, else /pfs if usable, else ~/pfs" if daemon else "/pfs"))
    p.add_argument("--sock-path", default=settings.sock_path,
                   help="also serve the API on this unix socket; empty for none (default: %(default)s)")
    p.add_argument("--port", type=int, default=settings.api_port if daemon else 9002,
                   help="serve the API on 127.0.0.1 and ::1 at this port (default: %(default)s)")
    p.add_argument("--no-tcp", action="store_true", help="serve only the unix socket")
    p.add_argument("--allow-other", type=parse_bool, nargs="?", const=True, default=not daemon,
                   metavar="BOOL", help="let other users see the mounts (default: %(default)s)")
    p.add_argument("--log-file", help="write the log here instead of stderr")
    p.add_argument("--data-dir", help="state: staged changes, cache, workspace "
                                      "(default: $PACHTRAY_DATA_DIR or $XDG_DATA_HOME/pachtray)")
    p.add_argument("--pachd-address", help="cluster to use, e.g. grpc://localhost:30650 "
                                           "(default: the pachctl active context)")
    if daemon:
        p.add_argument("--local-pachd-port", type=int, default=settings.local_port,
                       help="port of the embedded local server when no cluster is configured (default: %(default)s)")
    else:
        p.add_argument("--restore-mounts", action="store_true",
                       help="mount again what was mounted when the last Pachtray daemon or mount-server with "
                            "this flag stopped (default: start with no mounts, as Pachyderm's mount-server)")
    p.add_argument("--version", action="version", version=f"pachtray {__version__}")
    return p


def _lock_data_dir(data_dir: Path):
    """One daemon per data dir (staged changes must have one writer); returns the open lock file.

    The kernel drops the lock when the process dies, so a killed daemon never blocks the next one.
    """
    import fcntl

    lock = open(data_dir / "daemon.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise RuntimeError(f"the data dir {data_dir} is in use by another Pachtray daemon (pid {holder}); "
                           "stop it or use another --data-dir") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _setup_logging(log_file: str | None) -> None:
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(tokens.RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _run(argv: list[str], mode: str) -> int:
    malloc.limit_arenas()  # before the threads: FUSE workers each made an arena that kept freed reads
    settings, settings_problem = config.Settings.load_or_default()
    args = _parser(mode, settings).parse_args(argv)
    _setup_logging(args.log_file)
    if settings_problem:
        log.warning("%s", settings_problem)
    if args.allow_other and not frozen.allow_other_permitted():
        log.warning("mounting without allow_other (other users will not see the mounts): only root may use it "
                    "unless /etc/fuse.conf has a `user_allow_other` line")
        args.allow_other = False
    if args.pachd_address:
        try:
            parse_address(args.pachd_address)
        except ValueError:
            print(f"{mode}: invalid --pachd-address {args.pachd_address!r}: either empty or poorly formatted "
                  "cluster endpoint", file=sys.stderr)
            return 2

    data_dir = config.data_dir(args.data_dir)
    if args.mount_dir is None:
        args.mount_dir = settings.effective_mount_dir() if mode == "daemon" else "/pfs"
    mount_dir = Path(args.mount_dir).expanduser().absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            mount_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTCONN):
                raise
            # A live or stale FUSE mount (stat fails on a dead one): FuseMount cleans or reports it.
    except OSError as e:
        print(f"{mode}: cannot create {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        data_lock = _lock_data_dir(data_dir)
    except (RuntimeError, OSError) as e:
        print(f"{mode}: {e}", file=sys.stderr)
        return 1

    restore = settings.restore_mounts if mode == "daemon" else args.restore_mounts
    app = DaemonApp(settings=settings, data_dir=data_dir, mount_dir=mount_dir, allow_other=args.allow_other,
                    mode=mode, local_port=getattr(args, "local_pachd_port", LOCAL_PACHD_PORT), restore=restore)
    # Before FUSE starts: libfuse takes over these signals where they are still at their default.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: app.stopping.set())

    api = ApiServer(app, app.router, port=None if args.no_tcp else args.port, sock_path=args.sock_path or "")
    try:
        api.start()
    except BindError as e:
        log.error("%s", e)
        print(f"{mode}: {e}", file=sys.stderr)
        return 1
    log.info("pachtray %s %s (pid %d): mount dir %s, data dir %s", __version__, mode, os.getpid(), mount_dir, data_dir)

    try:
        app.start_manager()
        app.connect_at_start(args.pachd_address)
        threading.Thread(target=app.watch_connection, name="connection-watch", daemon=True).start()
        threading.Thread(target=app.refresh_mounts, name="mount-refresh", daemon=True).start()
        threading.Thread(target=app.watch_cluster, name="cluster-watch", daemon=True).start()
        if app.restore and not app.stopping.is_set():
            threading.Thread(target=app.restore_mounts, name="restore-mounts", daemon=True).start()
        while not app.stopping.wait(1.0):
            pass
        log.info("stopping: unmounting (uncommitted changes stay staged in %s)", data_dir)
    finally:
        api.stop()
        app.shutdown()
        data_lock.close()
    log.info("stopped")
    return 0


def daemon_main(argv: list[str]) -> int:
    """`pachtray daemon`: the app's daemon (see docs/architecture.md for the flags)."""
    return _run(argv, "daemon")


def mount_server_main(argv: list[str]) -> int:
    """`mount-server`: the drop-in for Pachyderm's mount-server."""
    return _run(argv, "mount-server")
