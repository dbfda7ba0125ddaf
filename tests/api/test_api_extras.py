"""`/pachtray/v1/*` over real HTTP against a real daemon: answers, pagination and 400s."""

from __future__ import annotations

import threading

import pytest
from apihelpers import shared_daemon  # noqa: F401 - fixture
from clusterhelpers import make_repo, mounted_repo, sdk, unmount_all  # noqa: F401 - fixtures

from conftest import wait_for

V1 = "/pachtray/v1"


def test_info_identifies_the_daemon(shared_daemon):
    info = wait_for(lambda: (i := shared_daemon.get(V1 + "/info").json())["connection"] == "connected" and i, 30,
                    what="daemon connected")
    assert info["pachtray"]
    assert info["local"] is False and info["auth"] == "off"
    assert info["mount_dir"] == str(shared_daemon.mount_dir)
    assert isinstance(info["generation"], int) and info["generation"] >= 0


def test_listings_and_pages(shared_daemon, sdk, unique_name):
    from pachyderm_sdk.api import pfs

    repo = unique_name("x")
    make_repo(sdk, repo, {f"/d/f{i}": b"%d" % i for i in range(5)}, description="five files")
    for i in range(2):
        with sdk.pfs.commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master"),
                            description=f"c{i}") as c:
            c.put_file_from_bytes(f"/extra{i}", b"e")
    repos = shared_daemon.get(V1 + "/repos").json()
    entry = next(r for r in repos["repos"] if r["repo"] == repo)
    assert entry["description"] == "five files" and entry["branches"] == ["master"]
    assert entry["authorization"] == "off" and entry["size_bytes"] > 0
    assert any(p["name"] == "default" for p in repos["projects"])

    branches = shared_daemon.get(V1 + "/branches", params={"repo": repo}).json()["branches"]
    assert [b["name"] for b in branches] == ["master"] and len(branches[0]["head"]) == 32

    page1 = shared_daemon.get(V1 + "/commits", params={"repo": repo, "branch": "master", "limit": 2}).json()
    assert [c["description"] for c in page1["commits"]] == ["c1", "c0"] and page1["next_offset"] == 2
    page2 = shared_daemon.get(V1 + "/commits", params={"repo": repo, "branch": "master", "limit": 2,
                                                       "offset": 2}).json()
    assert len(page2["commits"]) == 1 and page2["next_offset"] is None
    assert page1["commits"][0]["id"] == branches[0]["head"]

    seen, after = [], None
    while True:
        page = shared_daemon.get(V1 + "/files", params={"repo": repo, "branch": "master", "path": "/d",
                                                        "limit": 2, "after": after}).json()
        seen += [f["path"] for f in page["files"]]
        after = page["next"]
        if after is None:
            break
    assert seen == [f"/d/f{i}" for i in range(5)]
    by_commit = shared_daemon.get(V1 + "/files", params={"repo": repo, "commit": page2["commits"][0]["id"]}).json()
    assert [f["path"] for f in by_commit["files"]] == ["/d/"] and by_commit["files"][0]["type"] == "dir"


@pytest.mark.parametrize("route,params,message", [
    ("/commits", {"repo": "x"}, "missing query parameter 'branch'"),
    ("/commits", {"repo": "a/b", "branch": "m"}, "invalid repo name"),
    ("/commits", {"repo": "x", "branch": "m", "limit": "lots"}, "'limit' must be an integer"),
    ("/commits", {"repo": "x", "branch": "m", "limit": "0"}, "'limit' must be between 1 and 1000"),
    ("/files", {"repo": "x"}, "missing query parameter 'commit' (or 'branch')"),
    ("/files", {"repo": "x", "commit": "abc"}, "invalid commit id 'abc'"),
    ("/files", {"repo": "x", "branch": "m", "path": "/a/../b"}, "must not contain '.' or '..'"),
    ("/files", {"repo": "x", "branch": "m", "path": "rel"}, "path must be an absolute path"),
    ("/files", {"repo": "x", "branch": "m", "path": "/a\0b"}, "contains a NUL byte"),
    ("/branches", {}, "missing repo name"),
    ("/events", {"since": "x"}, "'since' must be an integer"),
    ("/events", {"since": "1", "timeout": "600"}, "'timeout' must be between 0 and 60"),
    ("/upload", {}, "missing query parameter 'job'"),
])
def test_bad_queries_are_400(shared_daemon, route, params, message):
    resp = shared_daemon.get(V1 + route, params=params)
    assert resp.status_code == 400, resp.text
    assert message in resp.text


@pytest.mark.parametrize("route,body,message", [
    ("/_upload", {"repo": "x", "paths": []}, "paths must be a non-empty list"),
    ("/_upload", {"repo": "x", "paths": ["relative/file"]}, "upload path must be absolute"),
    ("/_upload", {"repo": "x", "paths": ["/no/such/file/anywhere"]}, "upload path does not exist"),
    ("/_upload", {"repo": "x", "paths": ["/tmp"], "dest": "x"}, "dest must be an absolute path"),
    ("/_refresh", {}, "missing mount name"),
])
def test_bad_bodies_are_400(shared_daemon, route, body, message):
    resp = shared_daemon.put(V1 + route, json=body)
    assert resp.status_code == 400, resp.text
    assert message in resp.text
    resp = shared_daemon.put(V1 + route, data=b"not json")
    assert resp.status_code == 400 and "not valid JSON" in resp.text


@pytest.mark.parametrize("route", ["/_commit", "/_discard"])
def test_pachtray_commit_and_discard_of_no_such_mount_are_404(shared_daemon, route):
    resp = shared_daemon.put(V1 + route, json={"mount": "no-such-mount"})
    assert resp.status_code == 404 and "no mount named 'no-such-mount'" in resp.text


def test_repo_management_only_on_local_server(shared_daemon, unique_name):
    resp = shared_daemon.put(V1 + "/_create_repo", json={"repo": unique_name("nope")})
    assert resp.status_code == 403 and "embedded local server" in resp.text


def test_events_long_poll_wakes_on_rest_mount(shared_daemon, sdk, unique_name):
    repo = unique_name("ev")
    make_repo(sdk, repo, {"/f": b"f"})
    generation = shared_daemon.get(V1 + "/events").json()["generation"]
    unchanged = shared_daemon.get(V1 + "/events", params={"since": generation, "timeout": 0.2}).json()
    assert unchanged["generation"] == generation
    answer = {}
    waiter = threading.Thread(target=lambda: answer.update(shared_daemon.get(
        V1 + "/events", params={"since": generation, "timeout": 30}).json()))
    waiter.start()
    try:
        assert shared_daemon.put("/_mount", {"mounts": [{"name": f"ev_{repo}", "repo": repo}]}).ok
        waiter.join(30)
        assert not waiter.is_alive() and answer["generation"] != generation
    finally:
        unmount_all(shared_daemon)


def test_refresh_moves_ro_mount_to_branch_head(shared_daemon, sdk, unique_name):
    from pachyderm_sdk.api import pfs

    repo = unique_name("rf")
    with mounted_repo(shared_daemon, sdk, repo, {"/v": b"1"}) as name:
        with sdk.pfs.commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")) as c:
            c.put_file_from_bytes("/v", b"2")
        last = shared_daemon.get(V1 + "/activity").json()["last"]
        resp = shared_daemon.put(V1 + "/_refresh", {"mount": name})
        assert resp.status_code == 200, resp.text
        state = next(m for m in resp.json()["mounted"] if m["name"] == name)
        assert state["how_many_commits_behind"] == 0
        entries = shared_daemon.get(V1 + "/activity", params={"after": last}).json()["entries"]
        mine = [(e["title"], e["message"]) for e in entries if e["mount"] == name and e["kind"] != "upstream"]
        assert mine == [("Updated", f"{name} now shows {state['commit'][:8]}, the head of {repo}@master")], mine
        assert (shared_daemon.mount_dir / name / "v").read_bytes() == b"2"
        missing = shared_daemon.put(V1 + "/_refresh", {"mount": "nothing-here"})
        assert missing.status_code == 404 and "not mounted" in missing.text


def test_mounts_route_lists_mounts_only(shared_daemon, sdk, unique_name):
    repo = unique_name("mo")
    with mounted_repo(shared_daemon, sdk, repo, {"/f": b"f"}) as name:
        answer = shared_daemon.get(V1 + "/mounts").json()
        assert set(answer) == {"mounted"}
        state = next(m for m in answer["mounted"] if m["name"] == name)
        assert state["repo"] == repo and state["mode"] == "ro" and state["state"] == "mounted"
