"""Datum mode: PUT /datums/_mount /datums/_next /datums/_prev, GET /datums."""

from __future__ import annotations

from pachtray.api import models
from pachtray.api.routing import Router

DATUM_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "idx": {"type": "integer"}, "num_datums": {"type": "integer"},
                   "all_datums_received": {"type": "boolean"}},
}
DATUMS_STATE_SCHEMA = {
    "type": "object",
    "properties": {"num_datums": {"type": "integer"}, "input": {"type": "object"}, "idx": {"type": "integer"},
                   "all_datums_received": {"type": "boolean"}},
}


def mount_datums(req, app):
    """As the reference: everything is unmounted and datum mode left first, then the spec is read, so
    after a bad spec nothing is mounted (jupyterlab-pachyderm's view assumes so: it hides the datums,
    and a reload showed the previous datums again)."""
    app.manager.unmount_all()
    return app.manager.datums_mount(models.datum_spec(req))


def next_datum(req, app):
    return app.manager.datums_next()


def prev_datum(req, app):
    return app.manager.datums_prev()


def datums(req, app):
    return app.manager.datums_state()


def register(router: Router) -> None:
    router.add("PUT", "/datums/_mount", mount_datums,
               "Enter datum mode: compute the datums of a pipeline spec's input and mount the first",
               body_schema={"type": "object", "required": ["input"], "properties": {"input": {"type": "object"}}},
               response_schema=DATUM_SCHEMA, requires="auth")
    router.add("PUT", "/datums/_next", next_datum, "Mount the next datum", body_schema={"type": "object"},
               response_schema=DATUM_SCHEMA, requires="auth")
    router.add("PUT", "/datums/_prev", prev_datum, "Mount the previous datum", body_schema={"type": "object"},
               response_schema=DATUM_SCHEMA, requires="auth")
    router.add("GET", "/datums", datums, "The datum mode state (input with defaults filled)",
               response_schema=DATUMS_STATE_SCHEMA, requires="auth")
