"""`/pachtray/v1/*`: what the tray app needs beyond the mount-server API, in its rooms:
routes_daemon (identity, change feed, stop), routes_browse (repos, branches, commits, files),
routes_local (repo and branch management on the embedded server), routes_uploads (upload jobs).
Pachtray's mount routes (/pachtray/v1/mounts, _commit, _discard, _refresh) live with the others in
routes_mounts; reproducible notebooks in routes_repro."""

from __future__ import annotations

from pachtray.api import routes_browse, routes_daemon, routes_local, routes_uploads

PREFIX = "/pachtray/v1"


def register(router) -> None:
    """Add the GUI routes to the daemon's router (called by api.server)."""
    for module in (routes_daemon, routes_browse, routes_local, routes_uploads):
        module.register(router)
