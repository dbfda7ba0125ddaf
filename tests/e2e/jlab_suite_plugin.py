"""pytest plugin (`-p jlab_suite_plugin`) to run jupyterlab-pachyderm's own integration suite,
unmodified, on a shared machine (see jlab_suite_run.py). The suite's module sees a `subprocess`
that differs from the real one in exactly three calls of its dev_server fixture:

- `pkill -f mount-server` would end every mount-server on the machine: instead this run's own
  descendants whose command line names mount-server are ended by pid (SIGTERM, then SIGKILL);
- `umount PFS_MOUNT_DIR` unmounts the mount dir if it is still mounted;
- starting `python -m jupyterlab_pachyderm.dev_server` returns once it listens on :8888 (the
  fixture then waits its fixed 3 s and calls it; a dev server importing Jupyter on a busy
  2-core machine takes longer than those 3 s, and the fixture does not retry).

Besides: test_mount_datums, skipped upstream (a 'missing chunk' flake of pachd), runs here; the
test_pps* tests that create pipelines and wait for their jobs need a cluster with PPS workers,
which the embedded server is not: they are deselected, and the reason printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from proctree import become_subreaper, cmdline, descendants, end_descendants, terminate_pid

UNSKIP = {"test_mount_datums"}
NEEDS_PIPELINES = {"test_pps", "test_pps_reuse_pipeline_name_different_project",
                   "test_pps_update_default_project_pipeline"}
DESELECT_REASON = ("creates a pipeline and waits for its job to succeed: needs a cluster with PPS workers; "
                   "Pachtray's embedded server runs no pipelines")
DEV_SERVER_PORT = 8888
DEV_SERVER_START = 120.0  # s
_deselected: list[str] = []


def _is_mounted(path: str) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].replace("\\040", " ") == target for line in f)


def end_own_mount_servers() -> list[int]:
    """`pkill -f mount-server`, limited to this process's descendants, by pid."""
    pids = [pid for pid in descendants(os.getpid()) if b"mount-server" in cmdline(pid)]
    for pid in pids:
        terminate_pid(pid)
    return pids


def unmount_if_mounted(path: str) -> None:
    if _is_mounted(path):
        subprocess.run(["fusermount3", "-uz", path], check=False)


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)


class SuiteSubprocess:
    """The `subprocess` module as the suite's module sees it (see the module docstring)."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def run(args, *rest, **kwargs):
        if list(args) == ["pkill", "-f", "mount-server"]:
            return subprocess.CompletedProcess(args, 0 if end_own_mount_servers() else 1)
        mount_dir = os.environ.get("PFS_MOUNT_DIR", "/pfs")
        if len(args) == 2 and os.path.basename(str(args[0])) == "umount" and args[1] == mount_dir:
            unmount_if_mounted(mount_dir)
            return subprocess.CompletedProcess(args, 0)
        return subprocess.run(args, *rest, **kwargs)

    @staticmethod
    def Popen(args, *rest, **kwargs):  # noqa: N802 - the name the suite calls
        proc = subprocess.Popen(args, *rest, **kwargs)
        if list(args) == [sys.executable, "-m", "jupyterlab_pachyderm.dev_server"]:
            _wait_listening(proc, DEV_SERVER_PORT, DEV_SERVER_START)
        return proc


def pytest_configure(config):
    # Orphaned mount-servers (their dev_server gone first) stay our descendants, so they are found.
    become_subreaper()


def pytest_unconfigure(config):
    """Whatever the suite left running (a dev_server whose fixture failed before its teardown)."""
    end_own_mount_servers()
    end_descendants(os.getpid())
    unmount_if_mounted(os.environ.get("PFS_MOUNT_DIR", "/pfs"))


def pytest_collection_modifyitems(session, config, items):
    names = {item.originalname for item in items}
    missing = (UNSKIP | NEEDS_PIPELINES) - names
    if missing:
        raise pytest.UsageError(f"jlab_suite_plugin: the suite has no {sorted(missing)}; update the plugin")
    for module in {item.module for item in items}:
        module.subprocess = SuiteSubprocess()
    keep = []
    for item in items:
        if item.originalname in UNSKIP:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "skip"]
        if item.originalname in NEEDS_PIPELINES:
            _deselected.append(item.nodeid)
        else:
            keep.append(item)
    if _deselected:
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid in _deselected])
        items[:] = keep


def pytest_terminal_summary(terminalreporter):
    for nodeid in _deselected:
        terminalreporter.write_line(f"DESELECTED {nodeid}: {DESELECT_REASON}")

