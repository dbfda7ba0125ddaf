"""`/pachtray/v1` about the daemon itself: who it is (the GUI tells a Pachtray daemon from a foreign
mount-server by this), the change feed (a long poll on the mount manager's change generation, so
the GUI sees changes made through REST, e.g. by JupyterLab, without polling RPCs; and, for clients
that ask, on the cluster watcher's generation and the activity log), the activity log, and a clean
stop."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from pachtray import __version__, tokens
from pachtray.api import models
from pachtray.errors import ApiError
from pachtray.pfs.auth import AUTH_OFF, who_am_i
from pachtray.pfs.errors import RPC_ERRORS

PREFIX = "/pachtray/v1"
MAX_EVENT_WAIT = 60.0


def info(req, app):
    """Identity, connection, user and change generation."""
    out = {
        "pachtray": __version__,
        "pid": os.getpid(),
        "connection": app.connection_state(),
        "local": bool(app.is_local),
        "mount_dir": str(app.mount_dir),
        "token_storage": tokens.storage(app.settings.token_storage),
        "token_problem": app.connection.token_problem,  # e.g. a locked keychain: the GUI shows it
        "connection_error": app.connection.error,  # why there is no cluster (the GUI shows it once)
        "generation": -1,
        "mount_engine": "",
        "auth": AUTH_OFF,
        "user": "",
    }
    try:
        out["generation"] = app.manager.generation
    except ApiError as e:
        out["mount_engine"] = e.message  # still a Pachtray daemon, just without mounts
    if out["connection"] == "connected":
        try:
            out["auth"], out["user"] = who_am_i(app.client())
        except (*RPC_ERRORS, ApiError):
            out["connection"] = "disconnected"
    return out


def events(req, app):
    """Answer as soon as the manager's generation differs from `since`, or (when asked) the
    cluster generation from `cluster` or the newest activity id from `activity` (or at `timeout`).
    Asking for `cluster` makes the cluster watcher watch while the client listens."""
    since = models.number_param(req.query, "since", -1, -1, 2**62)
    timeout = models.number_param(req.query, "timeout", 25.0, 0.0, MAX_EVENT_WAIT, float)
    cluster = models.number_param(req.query, "cluster", -1, -1, 2**62)
    activity = models.number_param(req.query, "activity", -1, -1, 2**62)
    manager = app.manager

    def moved() -> bool:
        return (cluster >= 0 and app.watch.generation != cluster) or (activity >= 0 and app.activity.last != activity)

    with app.watch.listening() if "cluster" in req.query else contextlib.nullcontext():
        generation = manager.generation if since < 0 else manager.wait_change(since, timeout, moved)
    return {"generation": generation, "cluster": app.watch.generation, "activity": app.activity.last}


def activity(req, app):
    """What happened lately (mounts, unmounts, commits, uploads, upstream moves, failed actions),
    newest first; `after` gives only entries newer than that id."""
    after = models.number_param(req.query, "after", 0, 0, 2**62)
    return {"entries": app.activity.entries(after), "last": app.activity.last}


def shutdown(req, app):
    """Stop the daemon the same way SIGTERM does, right after answering."""
    threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
    return {"stopping": True}


def register(router) -> None:
    router.add("GET", PREFIX + "/info", info, "Daemon identity, connection, user and change generation")
    router.add("GET", PREFIX + "/events", events,
               "Long poll (`since`, `timeout` s): answers `{generation, cluster, activity}` when the mount "
               "generation differs from `since`, or, when given, the cluster generation (repos, branches and "
               "commits changed by anyone) from `cluster` or the newest activity id from `activity`")
    router.add("GET", PREFIX + "/activity", activity,
               "Recent mounts, unmounts, commits, uploads, upstream moves and failed actions, newest first "
               "(`after`: only entries with a larger id)")
    router.add("PUT", PREFIX + "/_shutdown", shutdown, "Stop the daemon cleanly (as SIGTERM does)",
               body_schema={"type": "object", "required": [], "properties": {}})
