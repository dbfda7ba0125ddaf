"""/openapi.json, built from the router so that every route is documented."""

from __future__ import annotations

from pachtray import __version__
from pachtray.api.routing import Router

_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def document(router: Router) -> dict:
    paths: dict[str, dict] = {}
    for route in sorted(router.routes.values(), key=lambda r: (r.path, r.method)):
        responses = {"200": {"description": "OK", "content": {"application/json": {
            "schema": route.response_schema or {}}}}}
        if route.body_schema is not None:
            responses["400"] = {"description": "Malformed request (the body says what is wrong)", "content": _TEXT}
        if route.requires:
            responses["404"] = {"description": "not connected to a cluster", "content": _TEXT}
        if route.requires == "auth":
            responses["401"] = {"description": "user unauthenticated", "content": _TEXT}
        responses["403"] = {"description": "Host or Origin not allowed", "content": _TEXT}
        responses["500"] = {"description": "The operation failed (the body says why)", "content": _TEXT}
        op = {"summary": route.summary, "operationId": f"{route.method.lower()}{route.path.replace('/', '_')}",
              "responses": responses}
        if route.body_schema is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body_schema}}}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Pachtray mount-server API", "version": __version__,
                 "description": "Drop-in for Pachyderm 2.8's mount-server REST API, plus /pachtray/v1 extras. "
                                "Errors are plain text."},
        "servers": [{"url": "http://127.0.0.1:9002"}],
        "paths": paths,
    }
