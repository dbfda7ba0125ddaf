"""Auth through the REST API against the embedded server in auth mode: OIDC login, per-repo access,
refused mounts, revoked tokens, logout, and where the token is kept (keychain or pachctl config)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import requests
from conftest import LocalPachd, wait_for
from pachyderm_sdk import Client
from pachyderm_sdk.api import auth, pfs

ROOT_TOKEN = "api-test-root-token"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def auth_pachd(tmp_path_factory):
    server = LocalPachd(tmp_path_factory.mktemp("auth-pachd") / "data",
                        extra=["--auth", "--root-token", ROOT_TOKEN]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def repos(auth_pachd):
    """Three repos alice can see: one she may read, one she may write, one she has no role on."""
    root = Client(host="127.0.0.1", port=auth_pachd.port, auth_token=ROOT_TOKEN)
    names = {}
    for access, role in (("read", "repoReader"), ("write", "repoWriter"), ("none", None)):
        name = f"auth-{access}-{os.getpid()}"
        repo = pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))
        root.pfs.create_repo(repo=repo)
        root.pfs.put_file_from_bytes(commit=pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master")),
                                     path="/data.txt", data=access.encode())
        if role:
            root.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name=f"default/{name}"),
                                          principal="user:alice", roles=[role])
        names[access] = name
    return names


def _login(d, user: str = "alice") -> tuple[requests.Response, dict]:
    """The extension's flow: /auth/_login, open the URL (a browser), /auth/_login_token waits for it."""
    start = d.put("/auth/_login")
    assert start.status_code == 200, start.text
    info = start.json()
    assert set(info) == {"auth_url", "oidc_state"}
    result: dict = {}
    waiter = threading.Thread(target=lambda: result.update(
        r=d.put("/auth/_login_token", json={"oidc": info["oidc_state"]})))
    waiter.start()
    assert requests.get(info["auth_url"] + f"&user={user}", timeout=30).status_code == 200
    waiter.join(120)
    return result["r"], info


def _file_keyring_env(tmp_path) -> dict:
    return {"PYTHON_KEYRING_BACKEND": "file_keyring.FileKeyring", "PACHTRAY_TEST_KEYRING": str(tmp_path / "kr.json"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}


def test_login_access_levels_refused_mounts_and_logout(daemon_factory, auth_pachd, repos):
    d = daemon_factory(auth_pachd.address)
    assert d.get("/config").json()["cluster_status"] == "AUTH_ENABLED"
    for path in ("/repos", "/mounts", "/projects", "/datums"):
        r = d.get(path)
        assert r.status_code == 401 and r.text == "user unauthenticated\n", path
    assert d.put("/_mount", json={"mounts": [{"name": "x", "repo": repos["read"]}]}).status_code == 401

    reply, _ = _login(d)
    assert reply.status_code == 200, reply.text
    cfg = reply.json()
    ctx = cfg["v2"]["contexts"][cfg["v2"]["active_context"]]
    assert ctx["pachd_address"] == auth_pachd.address and len(ctx["session_token"]) > 10
    # No usable keychain in this test (null backend): the token is kept in the pachctl config, as said.
    assert d.get("/pachtray/v1/info").json()["token_storage"] == f"file ({os.environ['PACH_CONFIG']})"
    stored = json.loads(Path(os.environ["PACH_CONFIG"]).read_text())
    assert ctx["session_token"] in json.dumps(stored)

    access = {r["repo"]: r for r in d.get("/repos").json()}
    assert access[repos["read"]]["authorization"] == "read"
    assert access[repos["write"]]["authorization"] == "write"
    assert access[repos["none"]]["authorization"] == "none" and access[repos["none"]]["branches"] is None

    refused = d.put("/_mount", json={"mounts": [{"name": "n", "repo": repos["none"]}]})
    # as the reference: its request check's InspectCommit is denied (400); an rw mount passes that
    # check (InspectRepo needs no permission) and is refused by its mount step (500)
    assert refused.status_code == 400 and "no read access" in refused.text
    refused = d.put("/_mount", json={"mounts": [{"name": "n", "repo": repos["none"], "mode": "rw"}]})
    assert refused.status_code == 500 and "no read access" in refused.text
    refused = d.put("/_mount", json={"mounts": [{"name": "w", "repo": repos["read"], "mode": "rw"}]})
    assert refused.status_code == 500 and "read-only access" in refused.text
    ok = d.put("/_mount", json={"mounts": [{"name": "r", "repo": repos["read"]},
                                           {"name": "w", "repo": repos["write"], "mode": "rw"}]})
    assert ok.status_code == 200, ok.text
    assert (d.mount_dir / "r" / "data.txt").read_bytes() == b"read"
    assert {m["name"] for m in ok.json()["mounted"]} == {"r", "w"}
    assert ctx["session_token"] not in d.log.read_text()  # never logged

    assert d.put("/auth/_logout").status_code == 200
    assert d.get("/repos").status_code == 401
    assert not d.mount_dir.joinpath("r").exists()
    assert ctx["session_token"] not in Path(os.environ["PACH_CONFIG"]).read_text()


def test_revoked_token_mid_session_is_401_not_500(daemon_factory, auth_pachd, repos):
    d = daemon_factory(auth_pachd.address)
    reply, _ = _login(d, "bob")
    token = reply.json()["v2"]["contexts"][reply.json()["v2"]["active_context"]]["session_token"]
    assert d.get("/repos").status_code == 200
    Client(host="127.0.0.1", port=auth_pachd.port, auth_token=ROOT_TOKEN).auth.revoke_auth_token(token=token)
    wait_for(lambda: d.get("/repos").status_code == 401, 10, what="401 after the revocation")
    assert d.get("/mounts").text == "user unauthenticated\n"


def test_token_kept_in_the_keychain_survives_a_restart(daemon_factory, auth_pachd, repos, tmp_path):
    env = _file_keyring_env(tmp_path)
    d = daemon_factory(auth_pachd.address, env=env)
    assert d.get("/pachtray/v1/info").json()["token_storage"] == "keyring (file_keyring)"
    reply, _ = _login(d)
    assert reply.status_code == 200, reply.text
    token = reply.json()["v2"]["contexts"][reply.json()["v2"]["active_context"]]["session_token"]
    assert token in Path(env["PACHTRAY_TEST_KEYRING"]).read_text()
    config_file = Path(os.environ["PACH_CONFIG"])
    assert not config_file.exists() or token not in config_file.read_text()
    d.stop()

    again = daemon_factory(auth_pachd.address, env=env, tmp=d.tmp)
    assert again.get("/repos").status_code == 200
    assert again.put("/auth/_logout").status_code == 200
    assert token not in Path(env["PACHTRAY_TEST_KEYRING"]).read_text()


def test_a_locked_keychain_is_said_not_taken_for_a_logout(daemon_factory, auth_pachd, repos, tmp_path):
    env = _file_keyring_env(tmp_path)
    d = daemon_factory(auth_pachd.address, env=env)
    reply, _ = _login(d)
    assert reply.status_code == 200, reply.text
    assert d.get("/pachtray/v1/info").json()["token_problem"] == ""
    d.stop()

    locked = daemon_factory(auth_pachd.address, env=dict(env, PACHTRAY_TEST_KEYRING_LOCKED="1"), tmp=d.tmp)
    info = wait_for(lambda: (i := locked.get("/pachtray/v1/info").json())["connection"] == "connected" and i, 30,
                    what="connected")
    assert info["auth"] == "unauthenticated"
    assert info["token_problem"].startswith(f"cannot read the login token for {auth_pachd.address} from the keychain "
                                            "(KeyringLocked: Failed to unlock the collection!); unlock the keychain")
    assert "KeyringLocked" in locked.log.read_text()
    assert locked.get("/repos").status_code == 401
    token = reply.json()["v2"]["contexts"][reply.json()["v2"]["active_context"]]["session_token"]
    assert token in Path(env["PACHTRAY_TEST_KEYRING"]).read_text()  # nothing was forgotten


@pytest.mark.parametrize("policy", ["session", "file"])
def test_the_user_chooses_where_tokens_are_kept(daemon_factory, auth_pachd, repos, tmp_path, policy):
    """With a keychain available, "session" keeps the token in memory only and "file" puts it in
    the pachctl config instead: the choice a user without a keychain (or not trusting it) makes."""
    from pachtray import config

    config.Settings(token_storage=policy).save()
    env = _file_keyring_env(tmp_path)
    d = daemon_factory(auth_pachd.address, env=env)
    where = d.get("/pachtray/v1/info").json()["token_storage"]
    assert where.startswith("session" if policy == "session" else "file ("), where
    reply, _ = _login(d)
    assert reply.status_code == 200, reply.text
    token = reply.json()["v2"]["contexts"][reply.json()["v2"]["active_context"]]["session_token"]
    assert d.get("/repos").status_code == 200
    keyring_file = Path(env["PACHTRAY_TEST_KEYRING"])
    assert not keyring_file.exists() or token not in keyring_file.read_text()
    config_file = Path(os.environ["PACH_CONFIG"])
    stored_in_file = config_file.exists() and token in config_file.read_text()
    assert stored_in_file == (policy == "file")
