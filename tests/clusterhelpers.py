"""Qt-free helpers for tests that run a real daemon against the session's embedded server:
an isolated environment for the daemon, an SDK client, repos with files, mounts made and undone.

Imported by tests/gui/guihelpers.py and tests/api test modules (tests/ is on sys.path: the
root conftest.py is imported the same way).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from conftest import Daemon


def isolated_env(home: Path) -> dict:
    return {
        "PACH_CONFIG": str(home / "pachctl-config.json"),
        "PACHTRAY_DATA_DIR": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "share"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }


@pytest.fixture
def sdk(client):
    """conftest's `client` (pachyderm_sdk on the session's embedded server), by the name these tests use."""
    return client


def make_repo(client, name: str, files: dict[str, bytes] | None = None, branch: str = "master",
              description: str = "") -> None:
    from pachyderm_sdk.api import pfs

    repo = pfs.Repo(name=name, type="user")
    client.pfs.create_repo(repo=repo, description=description)
    if files:
        with client.pfs.commit(branch=pfs.Branch(repo=repo, name=branch)) as c:
            for path, data in files.items():
                c.put_file_from_bytes(path, data)


def unmount_all(daemon: Daemon) -> None:
    with contextlib.suppress(Exception):
        daemon.put("/_unmount_all", {})


@contextlib.contextmanager
def mounted_repo(daemon: Daemon, client, repo: str, files: dict[str, bytes]):
    """A new repo holding `files`, mounted read-only for the block (yields the mount name);
    every mount of the daemon is gone after it."""
    make_repo(client, repo, files)
    name = f"m_{repo}"
    try:
        assert daemon.put("/_mount", {"mounts": [{"name": name, "repo": repo}]}).ok
        yield name
    finally:
        unmount_all(daemon)
