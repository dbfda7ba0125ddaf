"""`/pachtray/v1` routes of reproducible notebooks: running kernels, what a process read, locks.

A lock is answered as JSON (the client writes the file: the daemon never writes where a request
says), and a lock to reproduce comes as JSON in the request body.
"""

from __future__ import annotations

import os
from pathlib import Path

from pachtray.errors import ApiError
from pachtray.repro import kernels as kernels_mod
from pachtray.repro.pinning import build_lock
from pachtray.repro.reproduce import reproduce as reproduce_lock

PREFIX = "/pachtray/v1"


def _pid(value) -> int:
    """A JSON integer or a query's digits; not a float (1.5 is no process) nor a bool."""
    pid = int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value
    if type(pid) is not int or pid <= 0:
        raise ApiError(400, f"pid must be a process id (a positive integer), got {value!r}")
    return pid


def _reader_pid(app, value) -> int:
    """A pid whose reads can be asked for (not the daemon's own ancestry, which holds every process)."""
    pid = _pid(value)
    if app.manager.reads.is_boundary(pid):
        raise ApiError(400, f"pid {pid} is the daemon or one of its parents, whose subprocesses include every "
                            "reader: give the pid of the notebook's kernel (or of the script) instead")
    return pid


def _notebook(value) -> str:
    if not isinstance(value, str) or not os.path.isabs(value):
        raise ApiError(400, f"notebook must be the absolute path of a notebook file, got {value!r}")
    return os.path.normpath(value)


def managed_servers() -> list[kernels_mod.Server]:
    """Pachtray's own JupyterLab (`pachtray jupyter`, Open JupyterLab), from its record: found even
    when its runtime dir is not the one this daemon looks in. It serves the home folder."""
    from pachtray.jupyter import server

    lab = server.load_record()
    if lab is None or not lab.pid:
        return []
    return [kernels_mod.Server(url=f"http://127.0.0.1:{lab.port}/", token=lab.token, root_dir=str(Path.home()),
                               pid=lab.pid)]


def kernel_of(notebook: str) -> kernels_mod.Kernel:
    try:
        return kernels_mod.find_kernel(notebook, managed_servers())
    except kernels_mod.KernelNotFound as e:
        raise ApiError(404, str(e)) from None
    except kernels_mod.KernelAmbiguous as e:
        raise ApiError(409, str(e)) from None


def list_kernels(req, app):
    """Running notebook kernels of every Jupyter server on this machine, with how many files each read."""
    found, problems = kernels_mod.notebook_kernels(managed_servers())
    counts = app.manager.reads.counts([k.pid for k in found if k.pid])
    return {"kernels": [dict(k.as_json(), files_read=counts.get(k.pid, 0)) for k in found],
            "problems": problems}


def reads(req, app):
    """What the tree of process `pid` opened for reading (the raw material of a lock)."""
    pid = _reader_pid(app, req.query.get("pid"))
    found = app.manager.reads.reads(pid)
    if found is None:
        raise ApiError(404, f"no process {pid} is running")
    files, truncated = found
    return {"pid": pid, "reads": [{"mount": r.mount, "commit": r.commit, "path": r.path, "size": r.size,
                                   "modified": r.modified} for r in files],
            "truncated": [{"mount": m, "commit": c} for m, c in sorted(truncated)]}


def lock(req, app):
    """The lock of process `pid`, or of the kernel running `notebook` (an absolute path)."""
    if ("pid" in req.query) == ("notebook" in req.query):
        raise ApiError(400, "give either pid=PID or notebook=ABSOLUTE_PATH")
    kernel = None
    if "pid" in req.query:
        pid = _reader_pid(app, req.query["pid"])
    else:
        kernel = kernel_of(_notebook(req.query["notebook"]))
        pid = kernel.pid
    answer = build_lock(app, pid)
    answer["kernel"] = kernel.as_json() if kernel else None
    return answer


def pin(req, app):
    """Keep (`pinned`: true, the default) or stop keeping a process's reads after it exits."""
    data = req.json_object()
    pid = _reader_pid(app, data.get("pid"))
    pinned = data.get("pinned", True)
    if not isinstance(pinned, bool):
        raise ApiError(400, "pinned must be true or false")
    if app.manager.reads.pin(pid, pinned) is None:
        raise ApiError(404, f"no process {pid} is running")
    return {"pid": pid, "pinned": pinned}


def reproduce(req, app):
    data = req.json_object()
    if "lock" not in data:
        raise ApiError(400, "missing 'lock': expected {\"lock\": LOCK, \"rename\": {OLD: NEW}, \"check\": false}")
    check = data.get("check", False)
    if not isinstance(check, bool):
        raise ApiError(400, "check must be true or false")
    rename = data.get("rename", {})
    return reproduce_lock(app, data["lock"], {} if rename is None else rename, check)


def _schema(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "properties": props}


def register(router) -> None:
    router.add("GET", PREFIX + "/kernels", list_kernels,
               "Running notebook kernels (every Jupyter server's sessions) with their pid and files read")
    router.add("GET", PREFIX + "/reads", reads, "Files the process `pid` and its subprocesses opened in the mounts")
    router.add("GET", PREFIX + "/lock", lock,
               "A lock (commits and file hashes) for what process `pid`, or the kernel of `notebook`, read",
               requires="auth")
    router.add("PUT", PREFIX + "/_pin", pin, "Keep a process's reads after it exits (`pinned`: false undoes it)",
               body_schema=_schema(["pid"], pid={"type": "integer"}, pinned={"type": "boolean"}))
    router.add("PUT", PREFIX + "/_reproduce", reproduce,
               "Mount a lock's commits read-only under its mount names (`rename` old->new; `check` only checks)",
               body_schema=_schema(["lock"], lock={"type": "object"}, rename={"type": "object"},
                                   check={"type": "boolean"}),
               requires="auth")
