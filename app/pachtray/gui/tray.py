"""The tray icon and its menu, rebuilt from the cached status every time it opens."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from pachtray.gui import desktop_open, dialogs
from pachtray.gui.commit_dialog import open_commit_dialog
from pachtray.gui.controller import Controller
from pachtray.pfs.names import cut

MENU_LIMIT = 50  # projects, and repos per project; the window lists the rest
MENU_TEXT_MAX = 60  # characters of a submenu's title (names may be 255): the middle is cut, the tooltip whole


class Tray(QObject):
    """`actions` maps window/jupyter/login/settings/quit to callables of the app; `jupyter` (a
    gui.jupyter.JupyterOpener) shows its progress in the menu and the tooltip."""

    def __init__(self, controller: Controller, icons: dict[str, QIcon], actions: dict[str, Callable],
                 parent: QObject | None = None, jupyter=None, notebooks=None):
        super().__init__(parent)
        self.controller = controller
        self.notebooks = notebooks  # gui.notebooks.Notebooks: Pin data ▸ kernels, Open lock…
        self.icons = icons
        self.actions = actions
        self.jupyter = jupyter
        self.icon = QSystemTrayIcon(icons["disconnected"], self)
        self.menu = QMenu()
        self._submenus: list[QMenu] = []
        self.mount_menu: QMenu | None = None
        self.menu.aboutToShow.connect(self._about_to_show)
        self.menu.aboutToHide.connect(lambda: controller.follow_cluster("menu", False))
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        controller.status_changed.connect(self.update_icon)
        controller.busy_changed.connect(lambda _busy: self.update_icon())
        controller.repos_changed.connect(self._repos_arrived)
        if jupyter is not None:
            jupyter.progress.connect(lambda *_: self.update_icon())
            jupyter.active_changed.connect(lambda _active: self.update_icon())
        self.update_icon()
        self.rebuild()

    @property
    def state(self) -> str:
        return self.controller.state()

    def dispose(self) -> None:
        """Delete the menu (it has no parent widget) on the GUI thread."""
        self._clear_submenus()
        self.mount_menu = None
        self.menu.deleteLater()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def update_icon(self) -> None:
        state = self.state
        self.icon.setIcon(self.icons[state])
        status = self.controller.status
        if not status.reachable:
            tip = "Pachtray — daemon not running"
        else:
            count = len(status.mounted)
            tip = f"Pachtray — {status.cluster}, {status.connection}\n{count} mount{'s' if count != 1 else ''}"
            pending = status.pending_total()
            if pending:
                tip += f", {pending} uncommitted change{'s' if pending != 1 else ''}"
            for failed in (m for m in status.mounted if m.error):  # why the icon says "error"
                tip += f"\n{failed.name}: {failed.error}"
        if self.jupyter is not None and self.jupyter.active:
            tip += "\n" + self.jupyter.describe()
        self.icon.setToolTip(tip)

    def _on_activated(self, reason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.actions["window"]()

    def _about_to_show(self) -> None:
        self.controller.follow_cluster("menu", True)  # the Mount menu refills when new repos arrive
        self.rebuild()
        self.controller.refresh()
        if self.notebooks is not None:
            self.notebooks.refresh()

    # ------------------------------------------------------------- menu

    def _submenu(self, parent: QMenu, title: str) -> QMenu:
        shown = cut(title, MENU_TEXT_MAX)
        sub = QMenu(shown, parent)
        if shown != title:
            sub.menuAction().setToolTip(title)
        parent.addMenu(sub)
        self._submenus.append(sub)
        return sub

    def _clear_submenus(self) -> None:
        for sub in self._submenus:
            sub.deleteLater()
        self._submenus = []

    def rebuild(self) -> None:
        self._clear_submenus()
        self.menu.clear()
        status = self.controller.status
        m = self.menu
        if status.reachable:
            header = f"{status.cluster} — {status.connection}"
        else:
            header = "Pachtray daemon not running"
        m.addAction(header).setEnabled(False)
        if not status.reachable and "start" in self.actions:
            self._action(m, "Start the daemon", self.actions["start"])
        if status.auth == "on":
            m.addAction(f"Signed in as {status.user}").setEnabled(False)
        elif status.auth == "unauthenticated":
            m.addAction("Not logged in (keychain locked)" if status.token_problem else "Not logged in").setEnabled(False)
        m.addSeparator()
        self._add_mounts(m)
        self._add_mount_menu(m)
        if self.notebooks is not None:
            m.addSeparator()
            self.notebooks.add_to_menu(m, self._submenu)
        m.addSeparator()
        self._action(m, "Open window", self.actions["window"])
        self._add_jupyter(m)
        if status.auth == "on":
            self._action(m, f"Log out ({status.user})", self.controller.logout)
        else:
            login = self._action(m, "Log in…", self.actions["login"])
            login.setEnabled(status.auth == "unauthenticated")
            if status.auth != "unauthenticated":
                login.setToolTip("The cluster has no authentication")
        self._action(m, "Settings…", self.actions["settings"])
        m.addSeparator()
        self._action(m, "Quit", self.actions["quit"])

    def _action(self, menu: QMenu, text: str, slot: Callable) -> QAction:
        action = menu.addAction(text)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _add_jupyter(self, m: QMenu) -> None:
        """Open JupyterLab, or its progress and a Cancel while it is being set up or started."""
        if self.jupyter is None or not self.jupyter.active:
            self._action(m, "Open JupyterLab", self.actions["jupyter"])
            return
        m.addAction(self.jupyter.describe()).setEnabled(False)
        self._action(m, "Cancel opening JupyterLab", self.jupyter.cancel)

    def _add_mounts(self, m: QMenu) -> None:
        mounted = self.controller.status.mounted
        if not mounted:
            m.addAction("No mounts").setEnabled(False)
            return
        for mount in mounted:
            name, pending = mount.name, mount.pending
            title = f"{name} ({mount.mode})" + (f" — {mount.state}" if not mount.mounted else "")
            if pending:
                title += f" • {pending} uncommitted"
            sub = self._submenu(m, title)
            if mount.error:
                problem = sub.addAction(cut("⚠ " + mount.error, MENU_TEXT_MAX))
                problem.setToolTip(mount.error)
                problem.setEnabled(False)
            opener = self._action(sub, "Open folder", lambda p=mount.mountpoint: desktop_open.open_folder(None, p))
            opener.setEnabled(mount.can_open)
            if mount.mode == "rw" or mount.recovered:
                commit = self._action(sub, f"Commit… ({pending} pending)", lambda n=name: self.review_commit(n))
                commit.setEnabled(mount.can_commit)
            if mount.can_discard:
                self._action(sub, "Discard changes…",
                             lambda n=name, c=pending: dialogs.confirm_discard(None, self.controller, n, c))
            if mount.can_refresh:
                self._action(sub, "Update to latest commit", lambda n=name: self.controller.refresh_mount(n))
            if mount.can_unmount:
                self._action(sub, "Unmount",
                             lambda n=name, c=pending: dialogs.confirm_unmount(None, self.controller, n, c))

    def _add_mount_menu(self, m: QMenu) -> None:
        """The Mount submenu, filled from the snapshot each time it opens (the repos may arrive or
        change while the tray menu is open): "Loading…" until the cluster's first answer."""
        mount_menu = self.mount_menu = self._submenu(m, "Mount")
        if not self.controller.status.reachable or self.controller.status.connection != "connected":
            mount_menu.setEnabled(False)
            return
        mount_menu.aboutToShow.connect(lambda: self._fill_mount_menu(mount_menu))
        # Opened and closed as its signals say: a menu a D-Bus panel draws is never a visible QMenu.
        mount_menu.aboutToShow.connect(lambda: mount_menu.setProperty("open", True))
        mount_menu.aboutToHide.connect(lambda: mount_menu.setProperty("open", False))
        self._fill_mount_menu(mount_menu)

    def _repos_arrived(self) -> None:
        """New repos while the Mount menu is open (it said "Loading…"): show them there now."""
        menu = self.mount_menu
        if menu is not None and menu.isEnabled() and (menu.isVisible() or menu.property("open")):
            self._fill_mount_menu(menu)

    def _fill_mount_menu(self, mount_menu: QMenu) -> None:
        for sub in mount_menu.findChildren(QMenu):
            if sub in self._submenus:
                self._submenus.remove(sub)
            sub.deleteLater()
        mount_menu.clear()
        listing = self.controller.repos
        if not self.controller.repos_loaded and not self.controller.repos_error:
            mount_menu.addAction("Loading…").setEnabled(False)
            self.controller.refresh_repos()
            return
        if self.controller.repos_error:
            mount_menu.addAction(f"Cannot list repos: {self.controller.repos_error}").setEnabled(False)
            return
        by_project: dict[str, list[dict]] = {p["name"]: [] for p in listing.get("projects", [])}
        for r in listing.get("repos", []):
            by_project.setdefault(r["project"], []).append(r)
        if not any(by_project.values()):
            mount_menu.addAction("No repos").setEnabled(False)
            return
        projects = [p for p in sorted(by_project) if by_project[p]]
        for project in projects[:MENU_LIMIT]:
            repos = by_project[project]
            psub = self._submenu(mount_menu, project)
            for repo in repos[:MENU_LIMIT]:
                self._add_repo(psub, repo)
            if len(repos) > MENU_LIMIT:
                self._action(psub, f"{len(repos) - MENU_LIMIT} more… (open window)", self.actions["window"])
        if len(projects) > MENU_LIMIT:
            self._action(mount_menu, f"{len(projects) - MENU_LIMIT} more projects… (open window)",
                         self.actions["window"])

    def _add_repo(self, psub: QMenu, repo: dict) -> None:
        access = repo.get("authorization", "off")
        rsub = self._submenu(psub, repo["repo"])
        if access == "none":
            rsub.setEnabled(False)
            rsub.menuAction().setToolTip(repo.get("access_reason", "no access"))
            return
        branches = repo.get("branches") or []
        for branch in branches or ["master"]:
            bsub = self._submenu(rsub, branch if branches else "master (new)")
            ro = self._action(bsub, "Read-only", lambda r=repo, b=branch: self.controller.mount(
                r["project"], r["repo"], branch=b, mode="ro"))
            ro.setEnabled(bool(branches))
            rw = self._action(bsub, "Read-write", lambda r=repo, b=branch: self.controller.mount(
                r["project"], r["repo"], branch=b, mode="rw"))
            rw.setEnabled(access in ("off", "write"))
            if access == "read":
                rw.setToolTip(repo.get("access_reason", "read-only access"))

    def review_commit(self, name: str, parent: QWidget | None = None):
        return open_commit_dialog(self.controller, name, parent)
