"""The main window's frame: its tabs (Repositories: gui.repos_tab, Mounts: gui.mounts_tab; the
app adds Notebooks and Activity), the toolbar and the status bar."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QLabel, QMainWindow, QTabWidget, QToolBar

from pachtray.gui.controller import Controller
from pachtray.gui.mounts_tab import MountsTab
from pachtray.gui.repos_tab import ReposTab


class MainWindow(QMainWindow):
    """The frame: tabs, toolbar and status bar; reads the controller's cached status."""

    def __init__(self, controller: Controller, icon: QIcon | None = None, actions: dict | None = None):
        super().__init__()
        self.controller = controller
        self.setWindowTitle("Pachtray")
        if icon is not None:
            self.setWindowIcon(icon)
        self.resize(1180, 720)

        self.tabs = QTabWidget(self)
        self.setCentralWidget(self.tabs)
        self.browser = ReposTab(controller, self)
        self.tabs.addTab(self.browser, "Repositories")
        self.mounts_tab = MountsTab(controller, self)
        self.tabs.addTab(self.mounts_tab, "Mounts")
        # The Mounts tab's parts, as tests and screenshots reach them.
        self.mount_table, self.mount_buttons = self.mounts_tab.table, self.mounts_tab.buttons
        self.mount_status = self.mounts_tab.status_label
        self.select_mount, self.selected_mount = self.mounts_tab.select, self.mounts_tab.selected
        self._mount_action = self.mounts_tab.action
        self._build_toolbar(actions or {})
        self._build_status_bar()

        controller.status_changed.connect(self._on_status)
        self._on_status()

    # ------------------------------------------------------------- layout

    def _build_toolbar(self, actions: dict) -> None:
        bar = QToolBar("Main", self)
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        refresh = QAction("Refresh", self)
        refresh.triggered.connect(self.refresh)
        bar.addAction(refresh)
        for key in ("start", "jupyter", "settings", "login"):
            if key in actions:
                bar.addAction(actions[key])
        self.addToolBar(bar)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.cluster_label = QLabel("", self)
        self.user_label = QLabel("", self)
        bar.addPermanentWidget(self.browser.uploads.bar)
        bar.addPermanentWidget(self.browser.uploads.cancel_button)
        self.browser.message.connect(bar.showMessage)
        bar.addPermanentWidget(self.user_label)
        bar.addPermanentWidget(self.cluster_label)

    # ------------------------------------------------------------- status

    def refresh(self) -> None:
        self.controller.refresh()
        self.controller.refresh_repos()
        self.browser.reload()

    def _on_status(self) -> None:
        status = self.controller.status
        title = f"Pachtray — {status.cluster}" if status.reachable else "Pachtray — daemon not running"
        self.setWindowTitle(title)
        self.cluster_label.setText(f"Cluster: {status.cluster} — {status.connection}" if status.reachable
                                   else "Daemon not running")
        if status.auth == "on":
            self.user_label.setText(f"User: {status.user}")
        elif status.auth == "unauthenticated":
            self.user_label.setText("Not logged in (keychain locked)" if status.token_problem else "Not logged in")
        elif status.connection == "connected":
            self.user_label.setText("Auth off")
        else:  # nothing is known of the cluster's auth while it does not answer
            self.user_label.setText("")
        self.user_label.setToolTip(status.token_problem)
        self.mounts_tab.fill(status.mounted)
        self.tabs.setTabText(1, f"Mounts ({len(status.mounted)})" if status.mounted else "Mounts")
        self.browser.on_status()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.controller.follow_cluster("window", True)

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.controller.follow_cluster("window", False)
