"""Settings: edited here, validated by `config.Settings.errors()`, saved on a worker thread.

Start at login writes an XDG autostart entry on Linux ($XDG_CONFIG_HOME/autostart). On macOS a
LaunchAgent plist and on Windows a shortcut in shell:startup do the same; see the README.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
    QPushButton, QRadioButton, QSpinBox, QVBoxLayout, QWidget,
)

from pachtray import config, frozen
from pachtray.gui import dialogs
from pachtray.jupyter import kernels
from pachtray.jupyter.environment import ManagedEnv

AUTOSTART_NAME = "pachtray.desktop"
# Fields whose change needs the daemon restarted (it listens, mounts and connects with them).
RESTART_FIELDS = ("cluster_address", "tls_ca_file", "mount_dir", "api_port", "sock_path", "local_port",
                  "cache_size_mb", "token_storage")


def autostart_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "autostart" / AUTOSTART_NAME


def autostart_command() -> str:
    """The desktop entry's Exec line: the program quoted, then its arguments."""
    program, *args = frozen.pachtray_command()
    return " ".join([f'"{program}"', *args])


def apply_autostart(enabled: bool) -> None:
    """Write or remove the XDG autostart entry (Linux desktops run it at login)."""
    path = autostart_path()
    if not enabled:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[Desktop Entry]\nType=Application\nName=Pachtray\n"
                    "Comment=Pachyderm file system in your tray\n"
                    f"Exec={autostart_command()}\nIcon=pachtray\nTerminal=false\n"
                    "X-GNOME-Autostart-enabled=true\n", encoding="utf-8")


def save_settings(settings: config.Settings) -> None:
    """Persist the settings and the autostart entry (disk work: call from a worker)."""
    settings.save()
    apply_autostart(settings.start_at_login)


class SettingsDialog(QDialog):
    """Edits a copy of the settings; `on_saved(old, new)` runs after a successful save."""

    def __init__(self, settings: config.Settings, run_task: Callable, on_saved: Callable, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Pachtray Settings")
        self.setMinimumWidth(560)
        self._original = settings
        self._run_task = run_task
        self._on_saved = on_saved
        self.problems: dict[str, QLabel] = {}
        self.kernels_added: list[kernels.KernelSpec] = []

        outer = QVBoxLayout(self)
        form = QFormLayout()
        outer.addLayout(form)

        self.local_radio = QRadioButton("Local (embedded)", self)
        self.local_radio.setToolTip("The embedded server on this computer; when pachctl has an active context, "
                                    "its cluster is used instead")
        self.cluster_radio = QRadioButton("Cluster:", self)
        group = QButtonGroup(self)
        group.addButton(self.local_radio)
        group.addButton(self.cluster_radio)
        self.cluster_edit = QLineEdit(settings.cluster_address, self)
        self.cluster_edit.setPlaceholderText("grpc://pachd.example.com:30650")
        _fit_placeholder(self.cluster_edit)
        (self.cluster_radio if settings.cluster_address else self.local_radio).setChecked(True)
        self.cluster_radio.toggled.connect(self._sync_enabled)
        row = QHBoxLayout()
        row.addWidget(self.local_radio)
        row.addWidget(self.cluster_radio)
        row.addWidget(self.cluster_edit, 1)
        self._add(form, "Pachyderm", row, "cluster_address")
        self.local_port_edit = QLineEdit(str(settings.local_port), self)
        self.local_port_edit.setToolTip("Where the embedded server listens (pachctl and the SDK reach it there); "
                                        "change it when something else, such as `pachctl port-forward`, uses it.")
        self._add(form, "Embedded server port", self.local_port_edit, "local_port")

        self.ca_edit = QLineEdit(settings.tls_ca_file, self)
        self.ca_edit.setPlaceholderText("PEM file of the cluster's CA (for grpcs:// with a private CA)")
        _fit_placeholder(self.ca_edit)
        self._add(form, "TLS CA file", self._with_browse(self.ca_edit, file=True), "tls_ca_file")

        self.mount_edit = QLineEdit(settings.mount_dir, self)
        self.mount_edit.setPlaceholderText(f"default: {config.default_mount_dir()}")
        self._add(form, "Mount folder", self._with_browse(self.mount_edit, file=False), "mount_dir")

        self.port_edit = QLineEdit(str(settings.api_port), self)
        self._add(form, "API port", self.port_edit, "api_port")
        self.sock_edit = QLineEdit(settings.sock_path, self)
        self._add(form, "API socket", self.sock_edit, "sock_path")

        self.cache_spin = QSpinBox(self)
        self.cache_spin.setRange(1, 1024 * 1024)
        self.cache_spin.setSuffix(" MB")
        self.cache_spin.setValue(settings.cache_size_mb)
        self._add(form, "Read cache", self.cache_spin, "cache_size_mb")

        self._add(form, "JupyterLab", self._build_jupyter(settings), "jupyter_path")
        self.kernels_label = QLabel("", self)
        self.kernels_label.setWordWrap(True)
        self.add_kernel_button = QPushButton("Add a Python environment…", self)
        self.add_kernel_button.setToolTip("Its Python becomes a kernel in JupyterLab (a kernelspec in your Jupyter "
                                          "folder); it needs ipykernel installed there.")
        self.add_kernel_button.clicked.connect(self._choose_kernel_env)
        row = QHBoxLayout()
        row.addWidget(self.kernels_label, 1)
        row.addWidget(self.add_kernel_button)
        self._add(form, "Kernels", row, "kernels")
        self.refresh_kernels()

        # No keychain (headless Linux): the user decides between a plain file and no storage at all.
        self.token_combo = QComboBox(self)
        for value, label in TOKEN_STORAGE_LABELS.items():
            self.token_combo.addItem(label, value)
        self.token_combo.setCurrentIndex(max(0, self.token_combo.findData(settings.token_storage)))
        self._add(form, "Keep login tokens in", self.token_combo, "token_storage")

        self.login_check = QCheckBox("Start Pachtray when I log in", self)
        self.login_check.setChecked(settings.start_at_login)
        form.addRow("", self.login_check)
        self.restore_check = QCheckBox("Restore my mounts when Pachtray starts", self)
        self.restore_check.setChecked(settings.restore_mounts)
        form.addRow("", self.restore_check)
        self.stop_jupyter_check = QCheckBox("Stop Pachtray's JupyterLab (and its kernels) when I quit Pachtray", self)
        self.stop_jupyter_check.setChecked(settings.stop_jupyter_on_quit)
        form.addRow("", self.stop_jupyter_check)

        self.general_problem = QLabel("", self)
        self.general_problem.setStyleSheet("color: #d93025")
        self.general_problem.setWordWrap(True)
        outer.addWidget(self.general_problem)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        outer.addWidget(self.buttons)
        self._sync_enabled()

    def _build_jupyter(self, settings: config.Settings) -> QWidget:
        """Pachtray's JupyterLab (the default), or the `jupyter` program of the user's own."""
        box = QWidget(self)
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        self.managed_radio = QRadioButton("Pachtray's JupyterLab (3.6, with the Pachyderm panel)", box)
        self.managed_radio.setToolTip("Set up in Pachtray's data folder the first time you open it (a few minutes); "
                                      "it offers your kernels.")
        self.own_radio = QRadioButton("My own Jupyter:", box)
        group = QButtonGroup(box)
        group.addButton(self.managed_radio)
        group.addButton(self.own_radio)
        self.jupyter_edit = QLineEdit(settings.jupyter_path, box)
        self.jupyter_edit.setPlaceholderText("its jupyter program")
        (self.own_radio if settings.jupyter_path else self.managed_radio).setChecked(True)
        self.own_radio.toggled.connect(self._own_jupyter_toggled)
        v.addWidget(self.managed_radio)
        row = self._with_browse(self.jupyter_edit, file=True)
        row.insertWidget(0, self.own_radio)
        v.addLayout(row)
        return box

    def _own_jupyter_toggled(self, own: bool) -> None:
        if own and not self.jupyter_edit.text().strip():
            self.jupyter_edit.setText(shutil.which("jupyter") or "")
        self._sync_enabled()

    def refresh_kernels(self) -> None:
        """List the kernels Pachtray's JupyterLab offers (read on a worker)."""
        env_path = ManagedEnv().path

        def show(found: list[kernels.KernelSpec]) -> None:
            names = [k.display_name for k in found]
            if not any(k.name == "python3" for k in found):
                names.append("Python 3 (ipykernel) of Pachtray's JupyterLab")
            self.kernels_label.setText(", ".join(names))

        self._run_task(lambda: kernels.list_kernels(env_path), show,
                       lambda error: self.kernels_label.setText(f"Cannot list the kernels: {error}"))

    def _choose_kernel_env(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a Python environment (its folder)", str(Path.home()))
        if path:
            self.add_kernel(path)

    def add_kernel(self, path: str) -> None:
        """Make the Python environment at `path` (a folder or its python) a kernel; errors in a dialog."""
        self.add_kernel_button.setEnabled(False)

        def added(spec: kernels.KernelSpec) -> None:
            self.add_kernel_button.setEnabled(True)
            self.refresh_kernels()
            self.kernels_added.append(spec)

        def failed(error: Exception) -> None:
            self.add_kernel_button.setEnabled(True)
            dialogs.error(self, getattr(error, "title", "Cannot add the kernel"), str(error))

        self._run_task(lambda: kernels.add_python_kernel(path), added, failed)

    def _add(self, form: QFormLayout, label: str, field, key: str) -> None:
        holder = QWidget(self)
        v = QVBoxLayout(holder)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(2)
        if isinstance(field, QHBoxLayout):
            v.addLayout(field)
        else:
            v.addWidget(field)
        problem = QLabel("", holder)
        problem.setStyleSheet("color: #d93025")
        problem.setWordWrap(True)
        problem.hide()
        v.addWidget(problem)
        self.problems[key] = problem
        form.addRow(label, holder)

    def _with_browse(self, edit: QLineEdit, file: bool) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        button = QPushButton("Browse…", self)

        def browse():
            if file:
                path, _ = QFileDialog.getOpenFileName(self, "Choose a file", edit.text())
            else:
                path = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
            if path:
                edit.setText(path)

        button.clicked.connect(browse)
        row.addWidget(button)
        return row

    def _sync_enabled(self) -> None:
        self.cluster_edit.setEnabled(self.cluster_radio.isChecked())
        self.ca_edit.setEnabled(self.cluster_radio.isChecked())
        self.local_port_edit.setEnabled(self.local_radio.isChecked())
        self.jupyter_edit.setEnabled(self.own_radio.isChecked())

    def edited(self) -> tuple[config.Settings, dict[str, str]]:
        """The settings as edited, and what is wrong with them (field -> message)."""
        problems: dict[str, str] = {}
        port = _port(self.port_edit, "api_port", problems)
        # (with a cluster chosen the field is off: what it holds is kept as it was)
        local_port = (_port(self.local_port_edit, "local_port", problems) if self.local_radio.isChecked()
                      else self._original.local_port)
        cluster = self.cluster_edit.text().strip() if self.cluster_radio.isChecked() else ""
        if self.cluster_radio.isChecked() and not cluster:
            problems["cluster_address"] = "enter the cluster's address (grpc://host:port), or choose Local"
        jupyter = self.jupyter_edit.text().strip() if self.own_radio.isChecked() else ""
        if self.own_radio.isChecked() and not jupyter:
            problems["jupyter_path"] = "choose the jupyter program of your JupyterLab, or Pachtray's JupyterLab"
        settings = dataclasses.replace(
            self._original, cluster_address=cluster,
            tls_ca_file=self.ca_edit.text().strip() if cluster else "",
            mount_dir=self.mount_edit.text().strip(), api_port=port, sock_path=self.sock_edit.text().strip(),
            local_port=local_port,
            cache_size_mb=self.cache_spin.value(), jupyter_path=jupyter,
            start_at_login=self.login_check.isChecked(), restore_mounts=self.restore_check.isChecked(),
            token_storage=self.token_combo.currentData(), stop_jupyter_on_quit=self.stop_jupyter_check.isChecked())
        for key, message in settings.errors().items():
            problems.setdefault(key, message)
        return settings, problems

    def show_problems(self, problems: dict[str, str]) -> None:
        for key, label in self.problems.items():
            label.setText(problems.get(key, ""))
            label.setVisible(key in problems)
        other = [f"{k}: {v}" for k, v in problems.items() if k not in self.problems]
        self.general_problem.setText("\n".join(other))

    def save(self) -> None:
        settings, problems = self.edited()
        self.show_problems(problems)
        if problems:
            return
        self.buttons.setEnabled(False)
        old = self._original

        def saved(_):
            self.accept()
            self._on_saved(old, settings)

        def failed(error):
            self.buttons.setEnabled(True)
            self.general_problem.setText(f"Could not save the settings: {error}")

        self._run_task(lambda: save_settings(settings), saved, failed)


TOKEN_STORAGE_LABELS = {
    "auto": "the OS keychain (a file when there is none)",
    "keyring": "the OS keychain only",
    "file": "the pachctl config file (~/.pachyderm/config.json)",
    "session": "memory only (log in again after a restart)",
}


def _port(edit: QLineEdit, key: str, problems: dict[str, str]) -> int:
    """The port typed in ``edit``; what is not a number is a problem of ``key``."""
    try:
        return int(edit.text().strip())
    except ValueError:
        problems[key] = f"must be a port number between 1 and 65535, not {edit.text()!r}"
        return 0


def needs_restart(old: config.Settings, new: config.Settings) -> bool:
    return any(getattr(old, f) != getattr(new, f) for f in RESTART_FIELDS)


def _fit_placeholder(edit: QLineEdit) -> None:
    """Wide enough that the example in an empty field is read whole."""
    edit.setMinimumWidth(edit.fontMetrics().horizontalAdvance(edit.placeholderText()) + 24)
