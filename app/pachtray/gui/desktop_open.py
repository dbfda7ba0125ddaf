"""Opening a folder or an address with the desktop's own program, and saying so when that fails.

On Linux Qt hands the address to xdg-open and reports success once the process has started, so a
machine with no file manager (a bare window manager, a server with X forwarding) showed nothing at
all after "Open folder". Here xdg-open is run by us and its exit status read: a failure becomes a
dialog that names the path, so the user can open it by hand. Elsewhere Qt's answer is reliable.
"""

from __future__ import annotations

import shutil
import sys

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QWidget

from pachtray.gui import dialogs

_running: set[QProcess] = set()  # held until they finish (a file manager's opener may outlive the click)


def open_folder(parent: QWidget | None, path: str) -> None:
    """Show ``path`` in the file manager."""
    if path:
        _open(parent, QUrl.fromLocalFile(path), "Cannot open folder", f"Open {path} in a file manager yourself.")


def open_address(parent: QWidget | None, url: str) -> None:
    """Open ``url`` in the web browser."""
    _open(parent, QUrl(url), "Cannot open the browser", f"Open this address in a browser yourself:\n{url}")


def _open(parent: QWidget | None, url: QUrl, title: str, instead: str) -> None:
    if not sys.platform.startswith("linux"):
        if not QDesktopServices.openUrl(url):
            dialogs.error(parent, title, f"The desktop could not open it. {instead}")
        return
    opener = shutil.which("xdg-open")
    if opener is None:
        dialogs.error(parent, title, f"No program to open it with: xdg-open is not installed. {instead}")
        return
    process = QProcess()
    process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
    _running.add(process)

    def finished(code: int, status: QProcess.ExitStatus) -> None:
        _running.discard(process)
        process.deleteLater()
        if status == QProcess.ExitStatus.NormalExit and code == 0:
            return
        said = bytes(process.readAll()).decode(errors="replace").strip().splitlines()
        why = said[-1] if said else f"xdg-open ended with status {code}"
        dialogs.error(parent, title, f"The desktop has no program for it ({why}). {instead}")

    def not_started(error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            _running.discard(process)
            process.deleteLater()
            dialogs.error(parent, title, f"xdg-open could not be started ({process.errorString()}). {instead}")

    process.finished.connect(finished)
    process.errorOccurred.connect(not_started)
    process.start(opener, [url.toLocalFile() if url.isLocalFile() else url.toString(QUrl.ComponentFormattingOption.FullyEncoded)])
