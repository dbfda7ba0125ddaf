"""The GUI's one rule of what can be done with a mount (gui.client.MountInfo), which the tray's
menu and the window's buttons both follow (fast: no Qt, no daemon)."""

from __future__ import annotations

import pytest

from pachtray.gui.client import MountInfo
from pachtray.gui.controller import mount_name
from pachtray.pfs import names
from pachtray.pfs.names import NAME_MAX

pytestmark = pytest.mark.fast


def entry(**kw) -> dict:
    """A /pachtray/v1/mounts entry as the daemon answers it."""
    base = {"name": "m", "project": "default", "repo": "r", "branch": "master", "commit": "c" * 32, "paths": ["/"],
            "mode": "ro", "state": "mounted", "status": "up to date on latest commit cccccccc",
            "mountpoint": "/pfs/m", "latest_commit": "c" * 32, "how_many_commits_behind": 0, "pending_changes": 0,
            "error": ""}
    return base | kw


def test_parsed_from_the_daemons_answer():
    m = MountInfo.from_json(entry(how_many_commits_behind=3, pending_changes=2, paths=["/a", "/b"]))
    assert (m.name, m.behind, m.pending, m.paths, m.mode) == ("m", 3, 2, ("/a", "/b"), "ro")
    assert m.source == f"default/r@master={'c' * 12}"
    assert MountInfo.from_json({"name": "x", "branch": None, "commit": None}).source == "default/@"
    assert MountInfo.from_json(entry(error="commit failed")).message == "commit failed"
    assert MountInfo.from_json(entry()).message.startswith("up to date")
    behind = entry(how_many_commits_behind=1, latest_commit="d" * 32,
                   status=f"1 commits behind latest; current = {'c' * 8} (2'th), latest = {'d' * 8} (3'th)")
    assert MountInfo.from_json(behind).message == f"at {'c' * 8}, 1 commit behind the head of master ({'d' * 8})"
    assert MountInfo.from_json(behind | {"how_many_commits_behind": 3, "pinned": True}).message == \
        f"pinned to {'c' * 8}, 3 commits behind the head of master ({'d' * 8})"


# (entry, can_commit, can_discard, can_refresh, can_unmount, can_open)
RULES = [
    ("ro, up to date", entry(), False, False, False, True, True),
    ("ro, behind its branch", entry(how_many_commits_behind=2), False, False, True, True, True),
    ("ro commit, no branch", entry(branch="", how_many_commits_behind=2), False, False, False, True, True),
    ("ro commit of a branch (pinned)", entry(pinned=True, how_many_commits_behind=2), False, False, False, True, True),
    ("rw, clean", entry(mode="rw"), False, False, False, True, True),
    ("rw, changes", entry(mode="rw", pending_changes=3), True, True, False, True, True),
    ("rw, committing", entry(mode="rw", pending_changes=3, state="committing"), True, True, False, True, False),
    ("recovered changes", entry(mode="rw", state="pending", pending_changes=1, mountpoint="/pfs/m"),
     True, True, False, False, False),
    ("deleted upstream", entry(mode="rw", state="pending", pending_changes=4, error="deleted upstream: ..."),
     True, True, False, False, False),
]


@pytest.mark.parametrize("what, raw, commit, discard, refresh, unmount, open_", RULES, ids=[r[0] for r in RULES])
def test_what_can_be_done(what, raw, commit, discard, refresh, unmount, open_):
    m = MountInfo.from_json(raw)
    assert (m.can_commit, m.can_discard, m.can_refresh, m.can_unmount, m.can_open) == (
        commit, discard, refresh, unmount, open_)
    assert m.dirty == commit


def test_busy_states():
    assert [MountInfo.from_json(entry(state=s)).busy for s in ("mounting", "committing", "unmounting")] == [True] * 3
    assert not MountInfo.from_json(entry()).busy and not MountInfo.from_json(entry(state="pending")).busy


def test_mount_names_follow_the_extension_and_fit_a_file_name():
    assert mount_name("default", "images") == "default_images"
    assert mount_name("default", "images", branch="dev") == "default_images_dev"
    assert mount_name("p", "images", commit="0123456789abcdef") == "p_images_01234567"
    long_repo, long_branch = "r" * 255, "b" * 255
    made = {mount_name("default", long_repo), mount_name("default", long_repo, branch=long_branch),
            mount_name("default", long_repo, branch="c" * 255),
            mount_name("default", long_repo, commit="f" * 32)}
    assert len(made) == 4  # cut names stay distinct: they end with a digest of the whole
    for name in made:
        assert len(name.encode()) == NAME_MAX and names.is_mount_name(name), name
