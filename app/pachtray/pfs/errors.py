"""pachd's failures, classified once: every layer (the FUSE views, the mount manager, the REST
routes, the daemon, reproducible notebooks) asks this module what a gRPC error means.

The SDK's interceptor re-raises some failures (unreachable, auth not activated) as a
ConnectionError with the gRPC error as its cause, and pachd often answers UNKNOWN with
"... not found" rather than NOT_FOUND: both are handled here and nowhere else.

Two HTTP tables: the drop-in routes answer as Pachyderm 2.8's mount-server does (server.go:
every failure of a call to pachd is a 500 with its message, an unauthenticated user a 401), and
Pachtray's own routes (/pachtray/v1) say more (404, 409, 400, 403, 503 "try again later").
"""

from __future__ import annotations

import errno
import logging
import re

import grpc

from pachtray.errors import ApiError

# What a call to pachd raises: the SDK re-raises "cannot connect" as ConnectionError.
RPC_ERRORS = (grpc.RpcError, ConnectionError)
UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
# Pachtray's routes: the status a gRPC code answers with (anything else: 500).
PACHTRAY_STATUS = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    **{c: 503 for c in UNREACHABLE},
}
# The FUSE side: the errno a caller sees (anything else: EIO).
ERRNO = {
    grpc.StatusCode.NOT_FOUND: errno.ENOENT,
    grpc.StatusCode.PERMISSION_DENIED: errno.EACCES,
    grpc.StatusCode.UNAUTHENTICATED: errno.EACCES,
}
UNAUTHENTICATED = "user unauthenticated"
log = logging.getLogger(__name__)  # the reference's words, whatever pachd said


class ClusterUnreachable(ApiError):
    """pachd did not answer: "try again later", not "this request is wrong" (the workspace restore
    waits for the cluster on it). 500 on the drop-in's routes, 503 on Pachtray's."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(status, message)


def unwrap(e: BaseException | None) -> grpc.RpcError | None:
    """The gRPC error behind ``e`` (itself, or the cause of the SDK's ConnectionError), else None."""
    while e is not None:
        if isinstance(e, grpc.RpcError) and callable(getattr(e, "code", None)):
            return e
        e = e.__cause__
    return None


def code(e: BaseException) -> grpc.StatusCode | None:
    cause = unwrap(e)
    return cause.code() if cause is not None else None


def details(e: BaseException) -> str:
    """pachd's words (gRPC's for a failed connection, as a person says them); the code's name when
    it sent none; the text of an error that is not gRPC's."""
    cause = unwrap(e)
    if cause is None:
        return str(e) or type(e).__name__
    text = (cause.details() if callable(getattr(cause, "details", None)) else "") or ""
    return _why_unreachable(text.strip()) or cause.code().name.lower()


def _why_unreachable(text: str) -> str:
    """gRPC's words for a failed connection, as a person says them: "failed to connect to all
    addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: Connection
    refused" is "connection refused (127.0.0.1:1)"."""
    if not text.startswith("failed to connect to all addresses"):
        return text
    where = re.search(r"ipv[46]:(\S+?):\s", text)
    reason = text.rsplit(": ", 1)[-1].strip()
    reason = reason[:1].lower() + reason[1:] if reason and not reason.startswith("failed to connect") else \
        "no connection"
    return f"{reason} ({where.group(1)})" if where else reason


def is_not_found(e: BaseException) -> bool:
    """NOT_FOUND, or pachd's UNKNOWN "... not found"."""
    cause = unwrap(e)
    return cause is not None and (cause.code() == grpc.StatusCode.NOT_FOUND or "not found" in details(cause))


def is_unreachable(e: BaseException) -> bool:
    """pachd did not answer (down, a deadline, the channel closed under the call)."""
    return code(e) in UNREACHABLE


def is_unauthenticated(e: BaseException) -> bool:
    """No token, a bad one, or an expired/revoked one."""
    cause = unwrap(e)
    return cause is not None and (cause.code() == grpc.StatusCode.UNAUTHENTICATED
                                  or "no authentication token" in details(cause)
                                  or "token is corrupted or has expired" in details(cause))


def is_not_activated(e: BaseException) -> bool:
    """pachd answers auth calls with "the auth service is not activated" when auth is off."""
    cause = unwrap(e)
    return cause is not None and (cause.code() == grpc.StatusCode.UNIMPLEMENTED or "not activated" in details(cause))


def to_errno(e: BaseException) -> int:
    """The errno a FUSE caller sees for a failed call."""
    return ERRNO.get(code(e), errno.EIO) if not is_not_found(e) else errno.ENOENT


def os_error(e: BaseException, what: str) -> OSError:
    """``to_errno`` as an OSError for FUSE; an EIO (not a plain "no such file") is logged."""
    num = to_errno(e)
    if num == errno.EIO:
        log.warning("%s failed: %s", what, details(e))
    return OSError(num, f"{what}: {errno.errorcode[num]}")


def to_api_error(e: BaseException, what: str = "", *, reference: bool, not_found: int | None = None) -> ApiError:
    """The API's answer to a failed call. ``reference``: a route of the drop-in (401 or 500, as
    Pachyderm's mount-server); else Pachtray's table. ``not_found`` overrides the status of a
    missing object (the reference's request checks answer 400)."""
    prefix = f"{what}: " if what else ""
    if is_unauthenticated(e):
        return ApiError(401, UNAUTHENTICATED)
    if is_unreachable(e):
        return ClusterUnreachable(f"{prefix}cluster unreachable: {details(e)}",
                                  500 if reference else 503)
    if not_found is not None and is_not_found(e):
        status = not_found
    elif reference:
        status = 500
    else:
        status = 404 if is_not_found(e) else PACHTRAY_STATUS.get(code(e), 500)
    return ApiError(status, prefix + details(e))
