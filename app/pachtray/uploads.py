"""Uploads of local files and folders (dropped on a branch in the window) as one commit each: a
job service the daemon owns. Each job runs on its own thread, reports progress, and can be
cancelled; a failed or cancelled upload leaves the branch as it was.

The commit is made by pfs.commits (the rw mounts' commit path too): started with the user's
description, every path replaced, finished at the end; on failure or cancel it is dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass, field, fields

from pachyderm_sdk.api import pfs

from pachtray.pfs import commits, errors, modify
from pachtray.pfs.errors import RPC_ERRORS

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024
KEEP_FINISHED = 50
RUNNING, DONE, ERROR, CANCELLED = "running", "done", "error", "cancelled"


class Cancelled(Exception):
    """Raised inside the request stream when the job was cancelled: pachd sees the stream fail."""


@dataclass
class UploadJob:
    """Progress of one upload; read by GET /upload while the worker fills it in."""

    job: str
    project: str
    repo: str
    branch: str
    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0
    state: str = RUNNING
    commit: str = ""
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def snapshot(self) -> dict:
        with self.lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("lock", "cancel")}

    def sent(self, n: int) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        with self.lock:
            self.bytes_done += n


def plan(paths: list[str], dest: str) -> list[tuple[str, str, int]]:
    """(local file, pfs path, size) for every regular file under the dropped paths."""
    out = []
    for raw in paths:
        local = os.path.abspath(raw)
        base = os.path.basename(local.rstrip(os.sep))
        if os.path.isfile(local):
            out.append((local, f"{dest.rstrip('/')}/{base}", os.path.getsize(local)))
            continue
        for root, dirs, names in os.walk(local):
            dirs.sort()
            rel = os.path.relpath(root, local)
            prefix = f"{dest.rstrip('/')}/{base}" + ("" if rel == "." else "/" + rel.replace(os.sep, "/"))
            for n in sorted(names):
                full = os.path.join(root, n)
                if os.path.isfile(full):
                    out.append((full, f"{prefix}/{n}", os.path.getsize(full)))
    return out


class Uploads:
    """The daemon's upload jobs (the last KEEP_FINISHED finished ones are kept to be asked about)."""

    def __init__(self, record=None):
        self._jobs: dict[str, UploadJob] = {}
        self._lock = threading.Lock()
        self.record = record or (lambda *args, **kw: None)  # pachtray.activity: each job's end, once

    def start(self, client, branch: pfs.Branch, files: list[tuple[str, str, int]], description: str) -> UploadJob:
        job = UploadJob(job=uuid.uuid4().hex, project=branch.repo.project.name, repo=branch.repo.name,
                        branch=branch.name, files_total=len(files), bytes_total=sum(size for _, _, size in files))
        with self._lock:
            finished = [k for k, j in self._jobs.items() if j.state != RUNNING]
            for k in finished[:max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[k]  # oldest first (dicts keep insertion order)
            self._jobs[job.job] = job
        threading.Thread(target=self._work, args=(client, branch, files, description, job),
                         name=f"upload-{job.job[:8]}", daemon=True).start()
        return job

    def _work(self, client, branch: pfs.Branch, files, description: str, job: UploadJob) -> None:
        """A job's thread: the upload, then how it ended in the activity log."""
        self._run(client, branch, files, description, job)
        where = f"{job.repo}@{job.branch}" if job.project in ("", "default") else f"{job.project}/{job.repo}@{job.branch}"
        if job.state == DONE:
            self.record("upload", "Upload finished", f"{job.files_total} file(s) committed to {where} as "
                                                     f"{job.commit[:12]}")
        elif job.state == CANCELLED:
            self.record("upload", "Upload cancelled", f"nothing was committed to {where}")
        else:
            self.record("error", "Upload failed", f"{where}: {job.error}")

    def get(self, job_id: str) -> UploadJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> UploadJob | None:
        """Ask a running job to stop (it ends `cancelled`, its commit dropped); None if unknown."""
        job = self.get(job_id)
        if job is not None:
            job.cancel.set()
        return job

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()

    @staticmethod
    def _run(client, branch: pfs.Branch, files, description: str, job: UploadJob) -> None:
        def changes():
            for local, path, _ in files:
                yield from modify.replace_with_file(path, local, chunk=CHUNK, sent=job.sent)
                with job.lock:
                    job.files_done += 1

        def check():
            if job.cancel.is_set():
                raise Cancelled()

        try:
            new = commits.commit(client, branch, changes(), description=description, check=check)
            with job.lock:
                job.state, job.commit = DONE, new.id
        except (*RPC_ERRORS, OSError, Cancelled) as e:
            cancelled = isinstance(e, Cancelled) or job.cancel.is_set()
            message = "upload cancelled" if cancelled else f"upload failed: {errors.details(e)}"
            with job.lock:
                job.state, job.error = (CANCELLED if cancelled else ERROR), message
        except Exception as e:  # noqa: BLE001 - a job must end: one left `running` is followed for ever
            log.exception("upload %s failed", job.job)
            with job.lock:
                job.state, job.error = ERROR, f"upload failed: {e}"
