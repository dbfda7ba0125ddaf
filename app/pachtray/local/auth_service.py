"""auth_v2.API of the local server, and the permission checks the PFS service asks of it.

`AuthOff` behaves as pachd without auth: every check passes and every auth RPC fails with
UNIMPLEMENTED "the auth service is not activated", which is how clients detect "auth off".
`AuthOn` (`--auth --root-token T`) does what pachd 2.8 does for what Pachtray uses: session
tokens in the `authn-token` metadata, role bindings on the cluster, projects and repos, and an
OIDC login whose identity provider is a small login page on loopback.
"""

from __future__ import annotations

import hashlib
import html
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import grpc
from pachyderm_sdk.api import auth as auth_pb
from pachyderm_sdk.api import pfs

from pachtray.local.rpc import RpcFailure, invalid, unknown
from pachtray.local.store import RESOURCE_CLUSTER, RESOURCE_PROJECT, RESOURCE_REPO, Store

NOT_ACTIVATED = "the auth service is not activated"


class AuthOff:
    def authenticate(self, method: str, ctx) -> None:
        """Runs before every RPC; only the auth service itself refuses."""
        if method.startswith("/auth_v2.API/"):
            raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED, NOT_ACTIVATED)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def require(self, ctx, repo, permission) -> None:
        pass

    def require_project(self, ctx, project: str, permission) -> None:
        pass

    def require_cluster(self, ctx, permission) -> None:
        pass

    def repo_created(self, ctx, repo) -> None:
        pass

    def project_created(self, ctx, project: str) -> None:
        pass

    def can_list(self, ctx, repo) -> bool:
        return True

    def repo_auth_info(self, ctx, repo):
        return None

    def project_auth_info(self, ctx, project: str):
        return None


P = auth_pb.Permission
R = auth_pb.ResourceType
ROOT = "pach:root"
ALL_USERS = "allClusterUsers"
SESSION_TTL = 30 * 24 * 3600
LOGIN_TTL = 600
NOT_SIGNED_IN = "no authentication token (try logging in)"
BAD_TOKEN = "provided auth token is corrupted or has expired (try logging in again)"

_READER = {P.REPO_READ, P.REPO_INSPECT_COMMIT, P.REPO_LIST_COMMIT, P.REPO_LIST_BRANCH, P.REPO_LIST_FILE,
           P.REPO_INSPECT_FILE, P.REPO_ADD_PIPELINE_READER, P.REPO_REMOVE_PIPELINE_READER}
_WRITER = _READER | {P.REPO_WRITE, P.REPO_DELETE_COMMIT, P.REPO_CREATE_BRANCH, P.REPO_DELETE_BRANCH,
                     P.REPO_ADD_PIPELINE_WRITER}
_OWNER = _WRITER | {P.REPO_MODIFY_BINDINGS, P.REPO_DELETE}
_PROJECT_VIEWER = {P.PROJECT_LIST_REPO}
_PROJECT_WRITER = _PROJECT_VIEWER | {P.PROJECT_CREATE_REPO}
_PROJECT_OWNER = _PROJECT_WRITER | {P.PROJECT_DELETE, P.PROJECT_MODIFY_BINDINGS} | _OWNER

# The roles of pachd 2.8 that this server knows: what they grant, and where they may be bound.
ROLES: dict[str, tuple[frozenset, frozenset]] = {
    "repoReader": (frozenset(_READER), frozenset({R.REPO, R.PROJECT, R.CLUSTER})),
    "repoWriter": (frozenset(_WRITER), frozenset({R.REPO, R.PROJECT, R.CLUSTER})),
    "repoOwner": (frozenset(_OWNER), frozenset({R.REPO, R.PROJECT, R.CLUSTER})),
    "projectViewer": (frozenset(_PROJECT_VIEWER), frozenset({R.PROJECT, R.CLUSTER})),
    "projectWriter": (frozenset(_PROJECT_WRITER), frozenset({R.PROJECT, R.CLUSTER})),
    "projectOwner": (frozenset(_PROJECT_OWNER), frozenset({R.PROJECT, R.CLUSTER})),
    "projectCreator": (frozenset({P.PROJECT_CREATE}), frozenset({R.CLUSTER})),
    "robotUser": (frozenset({P.CLUSTER_AUTH_GET_ROBOT_TOKEN}), frozenset({R.CLUSTER})),
    "clusterAdmin": (frozenset(P), frozenset({R.CLUSTER})),
}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_of(ctx) -> str:
    for key, value in ctx.invocation_metadata() or ():
        if key == "authn-token":
            return value
    return ""


class AuthOn:
    """Auth activated: session tokens, per-resource role bindings, and a loopback OIDC stand-in."""

    # RPCs callers make before they have a token.
    OPEN = {"/auth_v2.API/Authenticate", "/auth_v2.API/GetOIDCLogin", "/auth_v2.API/Activate"}

    def __init__(self, store: Store, root_token: str, host: str):
        self.store = store
        self.root_hash = hash_token(root_token)
        self.host = host
        self.logins: dict[str, tuple[float, str | None]] = {}  # OIDC state -> (deadline, subject once done)
        self.logins_changed = threading.Condition()
        self.http: LoginServer | None = None
        self._ensure_default_bindings()

    def _ensure_default_bindings(self) -> None:
        defaults = [(RESOURCE_CLUSTER, "", ROOT, "clusterAdmin"),
                    (RESOURCE_CLUSTER, "", ALL_USERS, "projectCreator"),
                    (RESOURCE_PROJECT, "default", ALL_USERS, "projectWriter")]
        for rtype, name, principal, role in defaults:
            if principal not in self.store.role_bindings(rtype, name):
                self.store.set_roles(rtype, name, principal, [role])

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.http = LoginServer(self, self.host)
        self.http.start()

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()

    # --- identities ---------------------------------------------------------------------------
    def authenticate(self, method: str, ctx) -> None:
        if method not in self.OPEN:
            self.subject(ctx)

    def subject(self, ctx) -> str:
        token = _token_of(ctx)
        if not token:
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, NOT_SIGNED_IN)
        return self.subject_of(token)[0]

    def subject_of(self, token: str) -> tuple[str, float | None]:
        h = hash_token(token)
        if h == self.root_hash:
            return ROOT, None
        row = self.store.token(h)
        if row is None or (row[1] is not None and row[1] < time.time()):
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, BAD_TOKEN)
        return row

    def issue_token(self, subject: str, ttl: float | None) -> str:
        token = secrets.token_hex(16)
        self.store.add_token(hash_token(token), subject, time.time() + ttl if ttl else None)
        return token

    # --- permissions --------------------------------------------------------------------------
    def roles_on(self, subject: str, rtype: int, name: str) -> set[str]:
        """Roles of ``subject`` on a resource, including those inherited from its project and the cluster."""
        scopes = [(RESOURCE_CLUSTER, "")]
        if rtype == RESOURCE_PROJECT:
            scopes.append((RESOURCE_PROJECT, name))
        elif rtype == RESOURCE_REPO:
            scopes += [(RESOURCE_PROJECT, name.partition("/")[0]), (RESOURCE_REPO, name)]
        roles: set[str] = set()
        for scope in scopes:
            bindings = self.store.role_bindings(*scope)
            roles |= bindings.get(subject, set()) | bindings.get(ALL_USERS, set())
        return roles

    def permissions_on(self, subject: str, rtype: int, name: str) -> tuple[list, list[str]]:
        roles = self.roles_on(subject, rtype, name)
        perms = set()
        for role in roles:
            perms |= ROLES.get(role, (frozenset(), None))[0]
        return sorted(perms), sorted(roles)

    def _check(self, ctx, rtype: int, name: str, permission) -> str:
        subject = self.subject(ctx)
        if permission is not None and permission not in self.permissions_on(subject, rtype, name)[0]:
            kind = auth_pb.ResourceType(rtype).name
            raise RpcFailure(grpc.StatusCode.PERMISSION_DENIED,
                           f"{subject} is not authorized to perform this operation - needs permissions "
                           f"[{permission.name}] on {kind} {name}. Run `pachctl auth roles-for-permission` "
                           f"to find roles that grant a given permission.")
        return subject

    def require(self, ctx, repo, permission) -> None:
        self._check(ctx, RESOURCE_REPO, f"{repo.project}/{repo.name}", permission)

    def require_project(self, ctx, project: str, permission) -> None:
        self._check(ctx, RESOURCE_PROJECT, project, permission)

    def require_cluster(self, ctx, permission) -> None:
        self._check(ctx, RESOURCE_CLUSTER, "", permission)

    def repo_created(self, ctx, repo) -> None:
        self.store.set_roles(RESOURCE_REPO, f"{repo.project}/{repo.name}", self.subject(ctx), ["repoOwner"])

    def project_created(self, ctx, project: str) -> None:
        self.store.set_roles(RESOURCE_PROJECT, project, self.subject(ctx), ["projectOwner"])

    def repo_auth_info(self, ctx, repo):
        perms, roles = self.permissions_on(self.subject(ctx), RESOURCE_REPO, f"{repo.project}/{repo.name}")
        return pfs.AuthInfo(permissions=perms, roles=roles)

    def project_auth_info(self, ctx, project: str):
        perms, roles = self.permissions_on(self.subject(ctx), RESOURCE_PROJECT, project)
        return pfs.AuthInfo(permissions=perms, roles=roles)

    def can_list(self, ctx, repo) -> bool:
        """pachd lists a repo when its project lets the caller list repos, or the caller has any role on it."""
        subject = self.subject(ctx)
        name = f"{repo.project}/{repo.name}"
        if P.PROJECT_LIST_REPO in self.permissions_on(subject, RESOURCE_PROJECT, repo.project)[0]:
            return True
        return bool(self.permissions_on(subject, RESOURCE_REPO, name)[0])

    def _resource(self, resource: auth_pb.Resource) -> tuple[int, str]:
        """Validate a Resource message -> (type, canonical name); repos are named project/repo."""
        rtype = int(resource.type)
        name = resource.name
        if rtype == RESOURCE_REPO:
            if "/" not in name:
                name = f"default/{name}"
            project, _, repo = name.partition("/")
            self.store.get_repo(project, repo)
        elif rtype == RESOURCE_PROJECT:
            self.store.get_project(name)
        elif rtype == RESOURCE_CLUSTER:
            name = ""
        else:
            raise unknown(f"resource type {resource.type} is not supported by the Pachtray local server")
        return rtype, name

    # --- auth_v2.API --------------------------------------------------------------------------
    def Activate(self, req, ctx):
        raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED, "the auth service is already activated")

    def WhoAmI(self, req, ctx) -> auth_pb.WhoAmIResponse:
        subject, expiration = self.subject_of(_token_of(ctx))
        resp = auth_pb.WhoAmIResponse(username=subject)
        if expiration is not None:
            resp.expiration = datetime.fromtimestamp(expiration, tz=timezone.utc)
        return resp

    def GetOIDCLogin(self, req, ctx) -> auth_pb.GetOidcLoginResponse:
        state = secrets.token_urlsafe(24)
        now = time.time()
        with self.logins_changed:
            for old in [s for s, (deadline, _) in self.logins.items() if deadline < now]:
                del self.logins[old]
            self.logins[state] = (now + LOGIN_TTL, None)
        return auth_pb.GetOidcLoginResponse(login_url=self.http.login_url(state), state=state)

    def complete_login(self, state: str, username: str) -> bool:
        """Called by the login page: binds ``state`` to ``user:username``; False if the state is unknown."""
        with self.logins_changed:
            pending = self.logins.get(state)
            if pending is None or pending[0] < time.time():
                return False
            self.logins[state] = (pending[0], f"user:{username}")
            self.logins_changed.notify_all()
            return True

    def Authenticate(self, req: auth_pb.AuthenticateRequest, ctx) -> auth_pb.AuthenticateResponse:
        if not req.oidc_state:
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "ID tokens are not supported by the Pachtray local server; "
                                                            "log in with GetOIDCLogin")
        with self.logins_changed:
            while True:
                pending = self.logins.get(req.oidc_state)
                if pending is None or pending[0] < time.time():
                    self.logins.pop(req.oidc_state, None)
                    raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "OIDC state token is unknown or has expired")
                if pending[1] is not None:
                    del self.logins[req.oidc_state]
                    subject = pending[1]
                    break
                if not ctx.is_active():
                    raise unknown("context canceled")
                self.logins_changed.wait(1.0)
        return auth_pb.AuthenticateResponse(pach_token=self.issue_token(subject, SESSION_TTL))

    def GetRobotToken(self, req: auth_pb.GetRobotTokenRequest, ctx) -> auth_pb.GetRobotTokenResponse:
        self.require_cluster(ctx, P.CLUSTER_AUTH_GET_ROBOT_TOKEN)
        if not req.robot:
            raise invalid("robot name must be set")
        subject = req.robot if ":" in req.robot else f"robot:{req.robot}"
        return auth_pb.GetRobotTokenResponse(token=self.issue_token(subject, req.ttl or None))

    def RevokeAuthToken(self, req: auth_pb.RevokeAuthTokenRequest, ctx) -> auth_pb.RevokeAuthTokenResponse:
        caller = self.subject(ctx)
        row = self.store.token(hash_token(req.token))
        if row is None:
            return auth_pb.RevokeAuthTokenResponse(number=0)
        if row[0] != caller:
            self.require_cluster(ctx, P.CLUSTER_AUTH_REVOKE_USER_TOKENS)
        return auth_pb.RevokeAuthTokenResponse(number=self.store.revoke_token(hash_token(req.token)))

    def RevokeAuthTokensForUser(self, req, ctx) -> auth_pb.RevokeAuthTokensForUserResponse:
        if req.username != self.subject(ctx):
            self.require_cluster(ctx, P.CLUSTER_AUTH_REVOKE_USER_TOKENS)
        return auth_pb.RevokeAuthTokensForUserResponse(number=self.store.revoke_subject(req.username))

    def ModifyRoleBinding(self, req: auth_pb.ModifyRoleBindingRequest, ctx) -> auth_pb.ModifyRoleBindingResponse:
        rtype, name = self._resource(req.resource)
        needed = {RESOURCE_REPO: P.REPO_MODIFY_BINDINGS, RESOURCE_PROJECT: P.PROJECT_MODIFY_BINDINGS,
                  RESOURCE_CLUSTER: P.CLUSTER_MODIFY_BINDINGS}[rtype]
        self._check(ctx, rtype, name, needed)
        if not req.principal:
            raise invalid("principal must be set")
        for role in req.roles:
            if role not in ROLES:
                raise unknown(f"unknown role {role!r}")
            if rtype not in ROLES[role][1]:
                raise unknown(f"role {role} cannot be bound to a {auth_pb.ResourceType(rtype).name} resource")
        self.store.set_roles(rtype, name, req.principal, req.roles)
        return auth_pb.ModifyRoleBindingResponse()

    def GetRoleBinding(self, req: auth_pb.GetRoleBindingRequest, ctx) -> auth_pb.GetRoleBindingResponse:
        rtype, name = self._resource(req.resource)
        self.subject(ctx)
        entries = {p: auth_pb.Roles(roles={r: True for r in roles})
                   for p, roles in self.store.role_bindings(rtype, name).items()}
        return auth_pb.GetRoleBindingResponse(binding=auth_pb.RoleBinding(entries=entries))

    def GetPermissions(self, req: auth_pb.GetPermissionsRequest, ctx) -> auth_pb.GetPermissionsResponse:
        rtype, name = self._resource(req.resource)
        perms, roles = self.permissions_on(self.subject(ctx), rtype, name)
        return auth_pb.GetPermissionsResponse(permissions=perms, roles=roles)

    def GetPermissionsForPrincipal(self, req, ctx) -> auth_pb.GetPermissionsResponse:
        self.require_cluster(ctx, P.CLUSTER_AUTH_GET_PERMISSIONS_FOR_PRINCIPAL)
        rtype, name = self._resource(req.resource)
        perms, roles = self.permissions_on(req.principal, rtype, name)
        return auth_pb.GetPermissionsResponse(permissions=perms, roles=roles)

    def Authorize(self, req: auth_pb.AuthorizeRequest, ctx) -> auth_pb.AuthorizeResponse:
        rtype, name = self._resource(req.resource)
        subject = self.subject(ctx)
        have = set(self.permissions_on(subject, rtype, name)[0])
        satisfied = [p for p in req.permissions if p in have]
        missing = [p for p in req.permissions if p not in have]
        return auth_pb.AuthorizeResponse(authorized=not missing, satisfied=satisfied, missing=missing,
                                         principal=subject)

    def GetRolesForPermission(self, req, ctx) -> auth_pb.GetRolesForPermissionResponse:
        roles = [auth_pb.Role(name=name, permissions=sorted(perms), can_be_bound_to=sorted(where))
                 for name, (perms, where) in ROLES.items() if req.permission in perms]
        return auth_pb.GetRolesForPermissionResponse(roles=roles)

    def GetConfiguration(self, req, ctx) -> auth_pb.GetConfigurationResponse:
        self.subject(ctx)
        return auth_pb.GetConfigurationResponse(configuration=auth_pb.OidcConfig(
            issuer=self.http.base_url, client_id="pachtray-local", localhost_issuer=True))

    def GetGroups(self, req, ctx) -> auth_pb.GetGroupsResponse:
        self.subject(ctx)
        return auth_pb.GetGroupsResponse(groups=[])

    def GetGroupsForPrincipal(self, req, ctx) -> auth_pb.GetGroupsResponse:
        self.subject(ctx)
        return auth_pb.GetGroupsResponse(groups=[])


class LoginServer:
    """The stand-in identity provider: a login page on loopback that completes OIDC states.

    GET /login?state=S shows a form; GET or POST /login with state=S&user=NAME logs NAME in.
    """

    def __init__(self, auth: AuthOn, host: str):
        self.auth = auth
        handler = type("Handler", (_LoginHandler,), {"auth": auth})
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        name = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        name = name if ":" not in name else f"[{name}]"
        self.base_url = f"http://{name}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="login-page", daemon=True)

    def login_url(self, state: str) -> str:
        return f"{self.base_url}/login?{urlencode({'state': state})}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


USERNAME_RE = re.compile(r"[A-Za-z0-9._@+-]{1,128}")  # fullmatch: `$` lets a final newline through

LOGIN_FORM = """<!doctype html><html><head><meta charset="utf-8"><title>Pachtray local login</title></head>
<body><h1>Log in to the Pachtray local server</h1>
<form method="post" action="/login"><input type="hidden" name="state" value="{state}">
<label>User name <input name="user" autofocus required></label> <button type="submit">Log in</button></form>
</body></html>"""


class _LoginHandler(BaseHTTPRequestHandler):
    auth: AuthOn

    def log_message(self, fmt, *args) -> None:  # keep states and user names out of the server log
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/login":
            return self._answer(404, "not found")
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if "user" in params:
            return self._complete(params)
        if not params.get("state"):
            return self._answer(400, "missing state")
        self._answer(200, LOGIN_FORM.format(state=html.escape(params["state"], quote=True)), "text/html")

    def do_POST(self) -> None:
        if urlparse(self.path).path != "/login":
            return self._answer(404, "not found")
        length = int(self.headers.get("Content-Length") or 0)
        params = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self._complete(params)

    def _complete(self, params: dict[str, str]) -> None:
        user = params.get("user", "")
        if not USERNAME_RE.fullmatch(user):
            return self._answer(400, "invalid user name")
        if not self.auth.complete_login(params.get("state", ""), user):
            return self._answer(400, "this login link is unknown or has expired")
        page = (f"<!doctype html><html><body><p>Logged in as {html.escape(user)}. "
                "You can close this window.</p></body></html>")
        self._answer(200, page, "text/html")

    def _answer(self, status: int, body: str, ctype: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
