"""The window's Mounts tab: every mount and set of recovered changes, with the actions the tray
offers too (the rule is gui.client.MountInfo's)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTableWidgetItem, QVBoxLayout, QWidget

from pachtray.gui import desktop_open, dialogs
from pachtray.gui.client import MountInfo
from pachtray.gui.commit_dialog import open_commit_dialog
from pachtray.gui.controller import Controller
from pachtray.gui.tables import row_table

MOUNT_COLUMNS = ("Name", "Source", "Mode", "State", "Behind", "Pending")


class MountsTab(QWidget):
    def __init__(self, controller: Controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        v = QVBoxLayout(self)
        self.table = row_table(MOUNT_COLUMNS, self, stretch=1)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        v.addWidget(self.table)
        self.status_label = QLabel("", self)
        self.status_label.setWordWrap(True)
        v.addWidget(self.status_label)
        row = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for key, label in (("refresh", "Refresh"), ("commit", "Commit…"), ("discard", "Discard…"),
                           ("unmount", "Unmount"), ("open", "Open folder")):
            button = QPushButton(label, self)
            button.clicked.connect(lambda _=False, k=key: self.action(k))
            self.buttons[key] = button
            row.addWidget(button)
        row.addStretch(1)
        v.addLayout(row)

    def fill(self, mounted: list[MountInfo]) -> None:
        selected = self.selected()
        keep = selected.name if selected else None
        self.table.setRowCount(len(mounted))
        for r, m in enumerate(mounted):
            values = (m.name, m.source, m.mode, m.state, str(m.behind), str(m.pending))
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, m.name)
                item.setToolTip(m.message)
                self.table.setItem(r, c, item)
            if m.name == keep:
                self.table.selectRow(r)
        if keep is None and mounted:
            self.table.selectRow(0)
        self._update_buttons()

    def selected(self) -> MountInfo | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        return self.controller.status.mount(self.table.item(rows[0].row(), 0).text())

    def select(self, name: str) -> bool:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).text() == name:
                self.table.selectRow(r)
                return True
        return False

    def _update_buttons(self) -> None:
        m = self.selected()
        self.buttons["refresh"].setEnabled(m is not None and m.can_refresh)
        self.buttons["commit"].setEnabled(m is not None and m.can_commit)
        self.buttons["discard"].setEnabled(m is not None and m.can_discard)
        self.buttons["unmount"].setEnabled(m is not None and m.can_unmount)
        self.buttons["open"].setEnabled(m is not None and m.can_open)
        text = m.message if m else ""
        if text and self.controller.status.reachable and self.controller.status.connection != "connected":
            text += " (as last seen: the cluster does not answer)"
        self.status_label.setText(text)

    def action(self, key: str):
        """Run a button's action on the selected mount (a confirmation dialog where it asks one)."""
        m = self.selected()
        if m is None:
            return None
        name, pending = m.name, m.pending
        if key == "refresh":
            self.controller.refresh_mount(name)
        elif key == "commit":
            return open_commit_dialog(self.controller, name, self)
        elif key == "discard":
            return dialogs.confirm_discard(self, self.controller, name, pending)
        elif key == "unmount":
            return dialogs.confirm_unmount(self, self.controller, name, pending)
        elif key == "open":
            desktop_open.open_folder(self, m.mountpoint)
        return None
