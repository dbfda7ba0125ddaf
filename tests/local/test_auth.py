"""Auth mode of the embedded server (`--auth --root-token T`), through pachyderm_sdk's Client."""

from __future__ import annotations

import threading

import grpc
import pytest
import requests
from pachyderm_sdk import Client
from pachyderm_sdk.api import auth, pfs
from pachyderm_sdk.errors import AuthServiceNotActivated

from conftest import wait_for

ROOT_TOKEN = "local-root-token"


@pytest.fixture(scope="module")
def auth_pachd(tmp_path_factory):
    from conftest import LocalPachd

    server = LocalPachd(tmp_path_factory.mktemp("authpachd") / "data",
                        extra=["--auth", "--root-token", ROOT_TOKEN]).start()
    yield server
    server.stop()


@pytest.fixture
def root(auth_pachd):
    return Client(host="127.0.0.1", port=auth_pachd.port, auth_token=ROOT_TOKEN)


def as_token(server, token):
    return Client(host="127.0.0.1", port=server.port, auth_token=token)


def login(server, user: str) -> str:
    """The OIDC flow as a browser does it: GetOIDCLogin, follow the URL, submit the form, Authenticate."""
    anon = Client(host="127.0.0.1", port=server.port)
    start = anon.auth.get_oidc_login()
    page = requests.get(start.login_url, timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    done = requests.post(start.login_url.split("?")[0], data={"state": start.state, "user": user}, timeout=10)
    assert done.status_code == 200 and user in done.text
    return anon.auth.authenticate(oidc_state=start.state).pach_token


def repo_resource(name: str, project: str = "default") -> auth.Resource:
    return auth.Resource(type=auth.ResourceType.REPO, name=f"{project}/{name}")


def make_repo(root, unique_name) -> pfs.Repo:
    repo = pfs.Repo(name=unique_name())
    root.pfs.create_repo(repo=repo)
    root.pfs.put_file_from_bytes(commit=pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master")),
                                 path="/data.txt", data=b"secret")
    return repo


def read(client, repo):
    head = pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master"))
    return b"".join(m.value for m in client.pfs.get_file(file=pfs.File(commit=head, path="/data.txt")))


def write(client, repo):
    client.pfs.put_file_from_bytes(commit=pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master")),
                                   path="/new.txt", data=b"w")


def test_auth_off_looks_like_pachd_without_auth(client):
    with pytest.raises(AuthServiceNotActivated, match="the auth service is not activated"):
        client.auth.who_am_i()


def test_root_and_unauthenticated(auth_pachd, root):
    assert root.auth.who_am_i().username == "pach:root"
    anon = Client(host="127.0.0.1", port=auth_pachd.port)
    with pytest.raises(grpc.RpcError) as e:
        list(anon.pfs.list_repo())
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        as_token(auth_pachd, "not-a-token").auth.who_am_i()
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert root.get_version().minor == 8  # version needs no token


def test_login_flow_by_get_link(auth_pachd):
    anon = Client(host="127.0.0.1", port=auth_pachd.port)
    start = anon.auth.get_oidc_login()
    got = {}
    t = threading.Thread(target=lambda: got.update(token=anon.auth.authenticate(oidc_state=start.state).pach_token))
    t.start()  # Authenticate waits for the login to complete, as pachd's does
    assert requests.get(start.login_url + "&user=bob", timeout=10).status_code == 200
    t.join(30)
    me = as_token(auth_pachd, got["token"]).auth.who_am_i()
    assert me.username == "user:bob" and me.expiration.timestamp() > 0
    with pytest.raises(grpc.RpcError) as e:  # a state is good for one login only
        anon.auth.authenticate(oidc_state=start.state)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert requests.get(start.login_url + "&user=bob", timeout=10).status_code == 400


def test_role_bindings_and_permissions(auth_pachd, root, unique_name):
    repo = make_repo(root, unique_name)
    alice = as_token(auth_pachd, login(auth_pachd, "alice"))
    listed = {r.repo.name: r for r in alice.pfs.list_repo()}
    assert auth.Permission.REPO_READ not in listed[repo.name].auth_info.permissions
    with pytest.raises(grpc.RpcError) as e:
        read(alice, repo)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "REPO_READ" in e.value.details()

    root.auth.modify_role_binding(resource=repo_resource(repo.name), principal="user:alice", roles=["repoReader"])
    listed = {r.repo.name: r for r in alice.pfs.list_repo()}  # the server keeps ListRepo answers per access
    assert auth.Permission.REPO_READ in listed[repo.name].auth_info.permissions
    assert read(alice, repo) == b"secret"
    info = alice.pfs.inspect_repo(repo=repo).auth_info
    assert "repoReader" in info.roles and auth.Permission.REPO_READ in info.permissions
    assert auth.Permission.REPO_WRITE not in info.permissions
    with pytest.raises(grpc.RpcError) as e:
        write(alice, repo)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED

    root.auth.modify_role_binding(resource=repo_resource(repo.name), principal="user:alice", roles=["repoWriter"])
    write(alice, repo)
    perms = alice.auth.get_permissions(resource=repo_resource(repo.name))
    assert auth.Permission.REPO_WRITE in perms.permissions and "repoWriter" in perms.roles
    binding = root.auth.get_role_binding(resource=repo_resource(repo.name)).binding
    assert binding.entries["user:alice"].roles == {"repoWriter": True}
    with pytest.raises(grpc.RpcError) as e:  # writers may not change bindings
        alice.auth.modify_role_binding(resource=repo_resource(repo.name), principal="user:alice", roles=["repoOwner"])
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_creator_owns_new_repo(auth_pachd, unique_name):
    carol = as_token(auth_pachd, login(auth_pachd, "carol"))
    repo = pfs.Repo(name=unique_name())
    carol.pfs.create_repo(repo=repo)
    assert "repoOwner" in carol.pfs.inspect_repo(repo=repo).auth_info.roles
    carol.auth.modify_role_binding(resource=repo_resource(repo.name), principal="user:dave", roles=["repoReader"])
    assert carol.pfs.delete_repo(repo=repo).deleted


def test_robot_tokens_expire_and_revoke(auth_pachd, root):
    token = root.auth.get_robot_token(robot="ci", ttl=2).token
    robot = as_token(auth_pachd, token)
    assert robot.auth.who_am_i().username == "robot:ci"

    def expired():
        try:
            robot.auth.who_am_i()
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    wait_for(expired, 30, what="robot token expiry")

    long_lived = root.auth.get_robot_token(robot="ci2").token
    assert as_token(auth_pachd, long_lived).auth.who_am_i().username == "robot:ci2"
    assert root.auth.revoke_auth_token(token=long_lived).number == 1
    with pytest.raises(grpc.RpcError) as e:
        as_token(auth_pachd, long_lived).auth.who_am_i()
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:  # only admins mint robot tokens
        as_token(auth_pachd, login(auth_pachd, "eve")).auth.get_robot_token(robot="x")
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_user_revokes_own_session(auth_pachd):
    token = login(auth_pachd, "frank")
    frank = as_token(auth_pachd, token)
    assert frank.auth.revoke_auth_token(token=token).number == 1
    with pytest.raises(grpc.RpcError) as e:
        frank.auth.who_am_i()
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_bindings_survive_restart(tmp_path, unique_name):
    from pachtray.local.server import serve

    data_dir = tmp_path / "a"
    server = serve(0, data_dir, auth=True, root_token=ROOT_TOKEN)
    try:
        root = as_token(server, ROOT_TOKEN)
        repo = make_repo(root, unique_name)
        robot_token = root.auth.get_robot_token(robot="keeper").token
        root.auth.modify_role_binding(resource=repo_resource(repo.name), principal="robot:keeper",
                                      roles=["repoReader"])
    finally:
        server.stop()
    again = serve(0, data_dir, auth=True, root_token=ROOT_TOKEN)
    try:
        robot = as_token(again, robot_token)
        assert robot.auth.who_am_i().username == "robot:keeper"
        assert read(robot, repo) == b"secret"
        with pytest.raises(grpc.RpcError) as e:
            write(robot, repo)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        again.stop()
