"""Auth facts the API needs: is auth on, who is signed in, and what a user may do with a repo."""

from __future__ import annotations

import grpc

AUTH_OFF, AUTH_ON, AUTH_SIGNED_OUT = "off", "on", "unauthenticated"


def rpc_error(e: BaseException | None) -> grpc.RpcError | None:
    """The gRPC error behind ``e``: the SDK's interceptor re-raises some as ConnectionError
    (unreachable, auth not activated) with the original as the cause."""
    while e is not None:
        if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
            return e
        e = e.__cause__
    return None


def _code(e: grpc.RpcError) -> grpc.StatusCode | None:
    return e.code() if hasattr(e, "code") else None


def _details(e: grpc.RpcError) -> str:
    return (e.details() if hasattr(e, "details") else "") or ""


def is_not_activated(e: grpc.RpcError) -> bool:
    """pachd answers auth calls with 'the auth service is not activated' when auth is off."""
    return _code(e) == grpc.StatusCode.UNIMPLEMENTED or "not activated" in _details(e)


def is_unauthenticated(e: grpc.RpcError) -> bool:
    """No token, a bad one, or an expired/revoked one."""
    return _code(e) == grpc.StatusCode.UNAUTHENTICATED or "no authentication token" in _details(e) \
        or "token is corrupted or has expired" in _details(e)


def who_am_i(client) -> tuple[str, str]:
    """(state, username) in one WhoAmI call; state is AUTH_OFF, AUTH_ON or AUTH_SIGNED_OUT.

    Other failures (cluster unreachable, ...) propagate: they are not facts about auth.
    """
    from pachyderm_sdk.errors import AuthServiceNotActivated

    try:
        resp = client.auth.who_am_i()
    except AuthServiceNotActivated:
        return AUTH_OFF, ""
    except grpc.RpcError as e:
        if is_not_activated(e):
            return AUTH_OFF, ""
        if is_unauthenticated(e):
            return AUTH_SIGNED_OUT, ""
        raise
    return AUTH_ON, resp.username


def authorization(repo_info, auth_on: bool) -> str:
    """The reference's access level for a repo: off (auth off), none, read or write.

    ``auth_on`` comes from who_am_i(): an empty AuthInfo cannot be told from a missing one.
    """
    from pachyderm_sdk.api.auth import Permission

    if not auth_on:
        return "off"
    perms = set(repo_info.auth_info.permissions) if repo_info.auth_info else set()
    if Permission.REPO_READ not in perms:
        return "none"
    return "write" if Permission.REPO_WRITE in perms else "read"
