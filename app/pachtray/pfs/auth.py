"""Auth facts the API needs: is auth on, who is signed in, and what a user may do with a repo."""

from __future__ import annotations

import grpc

from pachtray.pfs.errors import is_not_activated, is_unauthenticated

AUTH_OFF, AUTH_ON, AUTH_SIGNED_OUT = "off", "on", "unauthenticated"


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
