"""Auth facts the API needs: is auth on, who is signed in, and what a user may do with a repo."""

from __future__ import annotations

import grpc
from pachyderm_sdk.api.auth import Permission

from pachtray.pfs.errors import is_not_activated, is_unauthenticated

AUTH_OFF, AUTH_ON, AUTH_SIGNED_OUT = "off", "on", "unauthenticated"
READ_PERMISSIONS = frozenset({Permission.REPO_READ, Permission.REPO_LIST_COMMIT, Permission.REPO_LIST_BRANCH,
                              Permission.REPO_LIST_FILE})


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
    """The access level to a repo, as the reference's ListByRepos says it: off (auth off), none,
    read or write. The one rule for GET /repos, the GUI and mount requests.

    Reading needs REPO_READ, REPO_LIST_COMMIT, REPO_LIST_BRANCH and REPO_LIST_FILE (its hasRepoRead);
    ``auth_on`` comes from who_am_i(): an empty AuthInfo cannot be told from a missing one.
    """
    if not auth_on:
        return "off"
    perms = set(repo_info.auth_info.permissions) if repo_info.auth_info is not None else set()
    if not READ_PERMISSIONS <= perms:
        return "none"
    return "write" if Permission.REPO_WRITE in perms else "read"
