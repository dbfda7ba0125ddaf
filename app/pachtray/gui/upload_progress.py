"""One upload at a time from the window (files dropped on a branch): its progress bar and Cancel
button in the status bar, polled from the daemon's upload job until it ends."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QProgressBar, QPushButton, QWidget

from pachtray.gui.controller import Controller

POLL_MS = 300


class UploadProgress(QObject):
    """Starts an upload job, shows its progress, and says how it ended (each end told once)."""

    committed = Signal(dict)  # the job, once its commit landed
    busy_message = Signal(str)  # a second upload asked for while one runs

    def __init__(self, controller: Controller, parent: QWidget):
        super().__init__(parent)
        self.controller = controller
        self.job: str | None = None
        self.bar = QProgressBar(parent)
        self.bar.setMaximumWidth(260)
        self.bar.setTextVisible(True)
        self.bar.hide()
        self.cancel_button = QPushButton("Cancel upload", parent)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def running(self) -> bool:
        return self.job is not None or self.bar.isVisible()

    def start(self, project: str, repo: str, branch: str, paths: list[str]) -> None:
        if self.running:
            self.busy_message.emit("An upload is already running.")
            return
        self.bar.setRange(0, 0)
        self.bar.setFormat(f"Uploading to {branch}…")
        self.bar.show()
        self.cancel_button.show()

        def started(job):
            self.job = job["job"]
            self._show(job)

        def failed(error):
            self.bar.hide()
            self.cancel_button.hide()
            self.controller.notify.emit(getattr(error, "title", "Upload failed"), str(error), True)

        self.controller.start_upload(project, repo, branch, paths, started, failed)

    def cancel(self) -> None:
        """Stop the running upload (the daemon drops its commit: the branch stays as it was)."""
        if self.job is not None:
            self.cancel_button.setEnabled(False)
            self.controller.cancel_upload(self.job)

    def _poll(self) -> None:
        self._timer.stop()  # one poll in flight at a time
        if self.job is not None:
            self.controller.upload_status(self.job, self._show,
                                          lambda e: self._finished({"state": "error", "error": str(e)}))

    def _show(self, job: dict) -> None:
        if job["state"] != "running":
            self._finished(job)
            return
        total = max(1, job["bytes_total"])
        self.bar.setRange(0, 1000)
        self.bar.setValue(int(1000 * job["bytes_done"] / total))
        self.bar.setFormat(f"Uploading {job['files_done']}/{job['files_total']} files… %p%")
        self._timer.start()

    def _finished(self, job: dict) -> None:
        self.job = None
        self._timer.stop()
        self.bar.hide()
        self.cancel_button.hide()
        self.cancel_button.setEnabled(True)
        where = f"{job.get('repo')}@{job.get('branch')}"
        if job["state"] == "cancelled":
            self.controller.notify.emit("Upload cancelled", f"Nothing was committed to {where}", False)
        elif job["state"] == "done":
            self.controller.notify.emit("Upload finished", f"{job['files_total']} file(s) committed to {where} as "
                                        f"{job['commit'][:12]}", False)
            self.committed.emit(job)
        else:
            self.controller.notify.emit("Upload failed", job.get("error") or "unknown error", True)
