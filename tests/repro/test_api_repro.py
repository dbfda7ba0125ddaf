"""The /pachtray/v1 routes of reproducible notebooks: bad input is a 400 naming the problem, a check
answers conflicts without mounting, and a lock that does not match its commit mounts nothing."""

from __future__ import annotations

import copy

from reprohelpers import mount, mounted, pinned_read, put_commit, unmount

FILES = {"a.txt": b"alpha\n", "b.txt": b"bravo\n"}


def _lock_of_a_read(daemon, client, unique_name) -> tuple[dict, str, str]:
    repo = unique_name("api")
    commit = put_commit(client, repo, FILES)
    return pinned_read(daemon, repo, daemon.tmp / f"{repo}.lock"), repo, commit


def test_bad_requests_name_the_problem(daemon):
    def get(**params):
        r = daemon.get("/pachtray/v1/lock", params=params)
        return r.status_code, r.text.strip()

    assert get() == (400, "give either pid=PID or notebook=ABSOLUTE_PATH")
    assert get(pid=1, notebook="/x.ipynb") == (400, "give either pid=PID or notebook=ABSOLUTE_PATH")
    assert get(pid="abc") == (400, "pid must be a process id (a positive integer), got 'abc'")
    assert get(pid="-3") == (400, "pid must be a process id (a positive integer), got '-3'")
    assert get(notebook="nb.ipynb") == (400, "notebook must be the absolute path of a notebook file, got 'nb.ipynb'")
    r = daemon.get("/pachtray/v1/reads", params={"pid": "x"})
    assert r.status_code == 400
    r = daemon.put("/pachtray/v1/_pin", {"pid": True})
    assert (r.status_code, r.text) == (400, "pid must be a process id (a positive integer), got True\n")
    r = daemon.put("/pachtray/v1/_pin", {"pid": 2**22 + 7})
    assert (r.status_code, r.text) == (404, f"no process {2**22 + 7} is running\n")
    for pid in (1, daemon.proc.pid):  # init and the daemon: their subprocesses include every reader
        assert get(pid=pid)[0] == 400 and f"pid {pid} is the daemon or one of its parents" in get(pid=pid)[1]
        assert daemon.put("/pachtray/v1/_pin", {"pid": pid}).status_code == 400
        assert daemon.get("/pachtray/v1/reads", params={"pid": pid}).status_code == 400

    def put(body):
        r = daemon.put("/pachtray/v1/_reproduce", body)
        return r.status_code, r.text.strip()

    assert put({}) == (400, 'missing \'lock\': expected {"lock": LOCK, "rename": {OLD: NEW}, "check": false}')
    assert put({"lock": []}) == (400, "lock: must be a JSON object")
    assert put({"lock": {"version": 1}}) == (400, "lock: 'cluster' must be an object with 'id' and 'address'")
    lock = {"version": 1, "cluster": {"id": "", "address": ""}, "created": "", "pachtray": "x",
            "mounts": [{"name": "d", "project": "default", "repo": "r", "branch": "", "commit": "XYZ",
                        "paths": ["/"], "files": []}]}
    assert put({"lock": lock}) == (400, "lock mount 'd': 'commit' must be a commit id (32 hexadecimal characters)")
    lock["mounts"][0]["commit"] = "0" * 32
    lock["mounts"][0]["files"] = [{"path": "/a", "size": -1, "hash": ""}]
    assert put({"lock": lock}) == (400, "lock mount 'd' files[0]: 'size' must be a non-negative integer")
    lock["mounts"][0]["files"] = []
    lock["mounts"].append(dict(lock["mounts"][0]))
    assert put({"lock": lock}) == (400, "lock mount 'd': appears twice")
    lock["mounts"].pop()
    assert put({"lock": lock, "check": "yes"}) == (400, "check must be true or false")
    assert put({"lock": lock, "rename": ["d"]}) == (400, "rename must be an object of old mount name -> new mount name")
    assert put({"lock": lock, "rename": {"d": "a/b"}}) == (
        400, "invalid mount name 'a/b': a mount name must not contain '/'")


def test_check_answers_conflicts_without_mounting_and_a_suggestion_that_works(daemon, client, unique_name):
    lock, repo, old = _lock_of_a_read(daemon, client, unique_name)
    put_commit(client, repo, {"a.txt": b"new\n"})
    unmount(daemon, "data")
    mount(daemon, "data", repo)
    before = mounted(daemon)

    r = daemon.put("/pachtray/v1/_reproduce", {"lock": lock, "check": True})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["conflicts"] == [{"name": "data", "taken": "data", "suggestion": f"data_{old[:8]}",
                                    "by": f"default/{repo}@master (ro)"}]
    assert answer["verified_files"] == 1
    assert [(m["name"], m["mounted"], m["commit"]) for m in answer["mounts"]] == [("data", False, old)]
    assert mounted(daemon) == before

    rename = {"data": answer["conflicts"][0]["suggestion"]}
    r = daemon.put("/pachtray/v1/_reproduce", {"lock": lock, "rename": rename})
    assert r.status_code == 200, r.text
    m = r.json()["mounts"][0]
    assert (m["name"], m["locked_name"], m["commit"], m["branch"], m["how_many_commits_behind"]) == (
        f"data_{old[:8]}", "data", old, "master", 1)
    assert m["mountpoint"] == str(daemon.mount_dir / f"data_{old[:8]}")
    assert r.json()["conflicts"] == []


def test_a_lock_that_does_not_match_its_commit_mounts_nothing(daemon, client, unique_name):
    lock, repo, commit = _lock_of_a_read(daemon, client, unique_name)
    unmount(daemon, "data")
    tampered = copy.deepcopy(lock)
    tampered["mounts"][0]["files"][0]["hash"] = "00" * 32
    r = daemon.put("/pachtray/v1/_reproduce", {"lock": tampered})
    assert r.status_code == 409
    assert r.text.startswith(f"mount 'data': /a.txt in commit {commit} has size 6 and hash ")
    assert r.text.rstrip().endswith("this lock does not describe that commit")
    missing = copy.deepcopy(lock)
    missing["mounts"][0]["files"][0]["path"] = "/nope.txt"
    r = daemon.put("/pachtray/v1/_reproduce", {"lock": missing})
    assert (r.status_code, r.text) == (409, f"mount 'data': /nope.txt in commit {commit} does not exist: this lock "
                                            "does not describe that commit\n")
    # A second mount whose commit is gone: the first, fine one is not mounted either.
    two = copy.deepcopy(lock)
    two["mounts"].append(dict(copy.deepcopy(lock["mounts"][0]), name="more", commit="f" * 32))
    r = daemon.put("/pachtray/v1/_reproduce", {"lock": two})
    assert r.status_code == 404 and "the pinned commit no longer exists" in r.text
    assert mounted(daemon) == {}

    r = daemon.put("/pachtray/v1/_reproduce", {"lock": lock})
    assert r.status_code == 200, r.text
    assert set(mounted(daemon)) == {"data"}


def test_a_name_held_by_recovered_rw_changes_is_a_conflict_with_a_suggestion(daemon, client, unique_name):
    """Recovered changes (state `pending`, not in the mount dir) keep their name: reproducing a lock
    into it is refused with another name to use, and nothing is mounted or lost."""
    from pachyderm_sdk.api import pfs

    lock, _, old = _lock_of_a_read(daemon, client, unique_name)
    unmount(daemon, "data")
    other = unique_name("held")
    put_commit(client, other, {"x.txt": b"x\n"})
    mount(daemon, "data", other, mode="rw")
    (daemon.mount_dir / "data" / "draft.txt").write_bytes(b"not committed\n")
    client.pfs.delete_repo(repo=pfs.Repo(name=other, type="user"), force=True)
    assert daemon.get("/mounts").json()["mounted"] == []  # GET /mounts refreshes: the repo is gone
    held = mounted(daemon)["data"]
    assert held["state"] == "pending" and held["pending_changes"] == 1

    r = daemon.put("/pachtray/v1/_reproduce", {"lock": lock})
    assert r.status_code == 409
    assert r.text == (f"mount name 'data' is already used by default/{other}@master (rw); reproduce it under another "
                      f"name (e.g. --rename data=data_{old[:8]}) or unmount 'data' first\n")
    r = daemon.put("/pachtray/v1/_reproduce", {"lock": lock, "check": True})
    assert r.json()["conflicts"] == [{"name": "data", "taken": "data", "suggestion": f"data_{old[:8]}",
                                      "by": f"default/{other}@master (rw)"}]
    assert mounted(daemon)["data"]["pending_changes"] == 1  # the recovered changes are untouched
    assert daemon.put("/pachtray/v1/_discard", {"mount": "data"}).status_code == 200


def test_reproducing_on_the_branch_mount_it_came_from_pins_it_there(daemon, client, unique_name):
    """The lock was made from `data`, a mount of the branch, still at the lock's commit: it is used as
    is, and pinned there (a later commit on the branch neither moves it nor offers to)."""
    lock, repo, old = _lock_of_a_read(daemon, client, unique_name)
    state = next(m for m in daemon.get("/pachtray/v1/mounts").json()["mounted"] if m["name"] == "data")
    assert state["pinned"] is False and state["commit"] == old
    r = daemon.put("/pachtray/v1/_reproduce", {"lock": lock})
    assert r.status_code == 200, r.text
    assert [(m["name"], m["reused"]) for m in r.json()["mounts"]] == [("data", True)]
    state = next(m for m in daemon.get("/pachtray/v1/mounts").json()["mounted"] if m["name"] == "data")
    assert state["pinned"] is True
    put_commit(client, repo, {"a.txt": b"new\n"})
    refused = daemon.put("/pachtray/v1/_refresh", {"mount": "data"})
    assert refused.status_code == 400 and "is pinned to commit" in refused.text
    assert (daemon.mount_dir / "data" / "a.txt").read_bytes() == FILES["a.txt"]
    unmount(daemon, "data")
