"""The one gRPC error mapping (pfs.errors): what each layer answers for each failure of pachd."""

from __future__ import annotations

import errno

import grpc
import pytest
from conftest import RpcFailure as Rpc

from pachtray.errors import ApiError
from pachtray.pfs import errors

pytestmark = pytest.mark.fast

C = grpc.StatusCode


def wrapped(e: grpc.RpcError) -> ConnectionError:
    """What the SDK's interceptor raises for "cannot connect": a ConnectionError caused by the RpcError."""
    try:
        raise ConnectionError("cannot connect") from e
    except ConnectionError as c:
        return c


def test_unwrap_finds_the_grpc_error_behind_the_sdks_connection_error():
    e = Rpc(C.UNAVAILABLE, "down")
    assert errors.unwrap(e) is e and errors.unwrap(wrapped(e)) is e
    assert errors.unwrap(ValueError("x")) is None and errors.unwrap(None) is None
    assert errors.code(wrapped(e)) == C.UNAVAILABLE and errors.code(OSError()) is None


def test_details_are_pachds_words_else_the_code_name_else_the_text():
    assert errors.details(Rpc(C.INTERNAL, " boom \n")) == "boom"
    assert errors.details(Rpc(C.DEADLINE_EXCEEDED)) == "deadline_exceeded"
    assert errors.details(OSError("disk gone")) == "disk gone"
    assert errors.details(RuntimeError()) == "RuntimeError"


@pytest.mark.parametrize("e, found", [
    (Rpc(C.NOT_FOUND, "repo x not found"), True),
    (Rpc(C.UNKNOWN, 'branch "b" not found in repo r'), True),  # pachd's habit
    (wrapped(Rpc(C.NOT_FOUND)), True),
    (Rpc(C.INTERNAL, "boom"), False),
    (KeyError("not found"), False),  # not pachd's answer
])
def test_not_found(e, found):
    assert errors.is_not_found(e) is found


@pytest.mark.parametrize("code, unreachable", [
    (C.UNAVAILABLE, True), (C.DEADLINE_EXCEEDED, True), (C.CANCELLED, True),
    (C.NOT_FOUND, False), (C.INTERNAL, False), (C.UNAUTHENTICATED, False),
])
def test_unreachable(code, unreachable):
    assert errors.is_unreachable(Rpc(code)) is unreachable
    assert errors.is_unreachable(wrapped(Rpc(code))) is unreachable


def test_auth_answers():
    assert errors.is_unauthenticated(Rpc(C.UNAUTHENTICATED))
    assert errors.is_unauthenticated(Rpc(C.UNKNOWN, "no authentication token"))
    assert errors.is_unauthenticated(Rpc(C.UNKNOWN, "token is corrupted or has expired"))
    assert not errors.is_unauthenticated(Rpc(C.PERMISSION_DENIED, "not authorized"))
    assert errors.is_not_activated(Rpc(C.UNIMPLEMENTED))
    assert errors.is_not_activated(Rpc(C.UNKNOWN, "the auth service is not activated"))
    assert not errors.is_not_activated(Rpc(C.UNAVAILABLE))


@pytest.mark.parametrize("e, num", [
    (Rpc(C.NOT_FOUND), errno.ENOENT),
    (Rpc(C.UNKNOWN, "file /a not found in repo r at commit c"), errno.ENOENT),
    (Rpc(C.PERMISSION_DENIED), errno.EACCES),
    (Rpc(C.UNAUTHENTICATED), errno.EACCES),
    (Rpc(C.UNAVAILABLE), errno.EIO),
    (Rpc(C.DEADLINE_EXCEEDED), errno.EIO),
    (Rpc(C.INTERNAL), errno.EIO),
    (wrapped(Rpc(C.UNAVAILABLE)), errno.EIO),
])
def test_errno_table(e, num):
    assert errors.to_errno(e) == num
    err = errors.os_error(e, "read r@c:/a")
    assert isinstance(err, OSError) and err.errno == num and err.strerror.startswith("read r@c:/a: ")


# code -> (reference routes, Pachtray's routes)
STATUS_TABLE = [
    (C.NOT_FOUND, 500, 404),
    (C.ALREADY_EXISTS, 500, 409),
    (C.INVALID_ARGUMENT, 500, 400),
    (C.FAILED_PRECONDITION, 500, 400),
    (C.PERMISSION_DENIED, 500, 403),
    (C.UNAUTHENTICATED, 401, 401),
    (C.UNAVAILABLE, 500, 503),
    (C.DEADLINE_EXCEEDED, 500, 503),
    (C.CANCELLED, 500, 503),
    (C.INTERNAL, 500, 500),
    (C.UNKNOWN, 500, 500),
]


@pytest.mark.parametrize("code, reference, pachtray", STATUS_TABLE)
def test_api_status_table(code, reference, pachtray):
    assert errors.to_api_error(Rpc(code, "why"), reference=True).status == reference
    assert errors.to_api_error(Rpc(code, "why"), reference=False).status == pachtray


def test_api_messages():
    e = errors.to_api_error(Rpc(C.INTERNAL, "boom"), "mount request 'x'", reference=True)
    assert isinstance(e, ApiError) and e.message == "mount request 'x': boom"
    assert errors.to_api_error(Rpc(C.UNAUTHENTICATED, "token expired"), reference=True).message == "user unauthenticated"
    down = errors.to_api_error(wrapped(Rpc(C.UNAVAILABLE, "connection refused")), "list", reference=True)
    assert isinstance(down, errors.ClusterUnreachable) and down.status == 500
    assert down.message == "list: cluster unreachable: connection refused"
    assert isinstance(errors.to_api_error(Rpc(C.UNAVAILABLE), reference=False), errors.ClusterUnreachable)
    # The reference's request checks answer a missing repo, branch or commit with 400.
    missing = errors.to_api_error(Rpc(C.UNKNOWN, "repo r not found"), "mount request 'x'", reference=True,
                                  not_found=400)
    assert (missing.status, missing.message) == (400, "mount request 'x': repo r not found")


def test_a_failed_connection_is_said_plainly():
    grpc_words = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:19199: "
                  "Failed to connect to remote host: Connection refused")
    down = errors.to_api_error(Rpc(C.UNAVAILABLE, grpc_words), "list repos", reference=False)
    assert down.message == "list repos: cluster unreachable: connection refused (127.0.0.1:19199)"
    v6 = "failed to connect to all addresses; last error: UNAVAILABLE: ipv6:[::1]:30650: Socket closed"
    assert errors.to_api_error(Rpc(C.UNAVAILABLE, v6), reference=False).message == \
        "cluster unreachable: socket closed ([::1]:30650)"
    other = errors.to_api_error(Rpc(C.UNAVAILABLE, "DNS resolution failed for nowhere:1"), reference=False)
    assert other.message == "cluster unreachable: DNS resolution failed for nowhere:1"
