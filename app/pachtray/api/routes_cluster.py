"""The daemon and its cluster: GET /health, GET/PUT /config, GET /openapi.json."""

from __future__ import annotations

from pachtray.api import models
from pachtray.api.routing import Router

CONFIG_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["cluster_status", "pachd_address"],
    "properties": {
        "cluster_status": {"type": "string", "enum": ["INVALID", "AUTH_ENABLED", "AUTH_DISABLED"]},
        "pachd_address": {"type": "string"},
    },
}
CONFIG_BODY = {
    "type": "object", "required": ["pachd_address"],
    "properties": {"pachd_address": {"type": "string", "example": "grpc://localhost:30650"},
                   "server_cas": {"type": "string", "description": "base64-encoded PEM of the cluster's CA"}},
}


def health(req, app):
    return {"status": "running"}


def config_answer(app) -> dict:
    """The reference's two fields, exactly (Pachtray's connection details are in /pachtray/v1/info)."""
    return {"cluster_status": app.cluster_status(), "pachd_address": app.address.url}


def get_config(req, app):
    return config_answer(app)


def put_config(req, app):
    address, server_cas = models.config_request(req)
    app.switch_cluster(address, server_cas)
    return config_answer(app)


def openapi(req, app):
    from pachtray.api.openapi import document

    return document(app.router)


def register(router: Router) -> None:
    router.add("GET", "/health", health, "Liveness: answers without a cluster",
               response_schema={"type": "object", "properties": {"status": {"type": "string", "enum": ["running"]}}})
    router.add("GET", "/config", get_config, "The cluster in use and its auth status (404 when none)",
               response_schema=CONFIG_SCHEMA, requires="cluster")
    router.add("PUT", "/config", put_config,
               "Switch cluster: checks the address, connects, records the `mount-server` pachctl context",
               body_schema=CONFIG_BODY, response_schema=CONFIG_SCHEMA)
    router.add("GET", "/openapi.json", openapi, "This document", response_schema={"type": "object"})
