"""OIDC login and logout: PUT /auth/_login, /auth/_login_token, /auth/_logout."""

from __future__ import annotations

import json

from pachtray.api import models
from pachtray.api.routing import Response, Router


def login(req, app):
    return app.start_login()


def login_token(req, app):
    """Finish the login; answers the pachctl config (the extension writes it to ~/.pachyderm/config.json)."""
    cfg = app.finish_login(models.oidc_state(req))
    return Response(200, (json.dumps(cfg, indent=2) + "\n").encode())


def logout(req, app):
    app.logout()
    return Response(200, b"", "text/plain; charset=utf-8")


def register(router: Router) -> None:
    router.add("PUT", "/auth/_login", login, "Start an OIDC login: the URL to open and the state to finish with",
               body_schema={"type": "object"},
               response_schema={"type": "object", "properties": {"auth_url": {"type": "string"},
                                                                 "oidc_state": {"type": "string"}}},
               requires="cluster")
    router.add("PUT", "/auth/_login_token", login_token,
               "Wait for the login to complete; keeps the token and answers the pachctl config JSON",
               body_schema={"type": "object", "required": ["oidc"], "properties": {"oidc": {"type": "string"}}},
               response_schema={"type": "object"}, requires="cluster")
    router.add("PUT", "/auth/_logout", logout, "Unmount everything and forget the session token",
               body_schema={"type": "object"}, requires="auth")
