"""The tray app on real desktops, driven as a user would: an X server (Xvfb) and either an XEmbed
tray (trayer), where Qt shows its own balloon, or a D-Bus panel (a session bus, a
StatusNotifierWatcher and host stand-in reading the menu over com.canonical.dbusmenu, dunst as the
notification server), where Qt's own notification could not be clicked (gui.desktop_notifications).
An upstream move of a read-only mount's branch is announced, and a mouse click (XTEST) on the
notification moves the mount to the new head through the daemon; the panel opens the tray menu and
mounts a repo from it, and a click on the icon opens the window."""

from __future__ import annotations

import ctypes
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from desktophelpers import HEADER_SENDER, BusService, NotificationServer, session_bus  # noqa: F401 - fixture
from guihelpers import make_repo, sdk, shared_daemon, unmount_all  # noqa: F401 - fixtures
from pachyderm_sdk.api import pfs

from conftest import stop_process, wait_for
from pachtray.gui.client import EXTRAS

XCB_APP = Path(__file__).with_name("xcb_app.py")
ARTIFACTS = Path(os.environ.get("PACHTRAY_TEST_ARTIFACTS", Path(__file__).parents[2] / ".test-artifacts"))


class XServer:
    """Xlib through ctypes: a tray host's presence and XTEST input."""

    def __init__(self, display: str):
        self.x11 = ctypes.CDLL("libX11.so.6")
        self.xtst = ctypes.CDLL("libXtst.so.6")
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.x11.XInternAtom.restype = ctypes.c_ulong
        self.x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self.x11.XGetSelectionOwner.restype = ctypes.c_ulong
        self.x11.XGetSelectionOwner.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        self.x11.XFlush.argtypes = self.x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                   ctypes.c_ulong]
        self.xtst.XTestFakeButtonEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self.d = self.x11.XOpenDisplay(display.encode())
        assert self.d, f"cannot open X display {display}"

    def has_tray(self) -> bool:
        return bool(self.x11.XGetSelectionOwner(self.d, self.x11.XInternAtom(self.d, b"_NET_SYSTEM_TRAY_S0", 0)))

    def click(self, x: int, y: int) -> None:
        self.xtst.XTestFakeMotionEvent(self.d, -1, x, y, 0)
        self.xtst.XTestFakeButtonEvent(self.d, 1, 1, 0)
        self.xtst.XTestFakeButtonEvent(self.d, 1, 0, 0)
        self.x11.XFlush(self.d)

    def close(self) -> None:
        self.x11.XCloseDisplay(self.d)


@pytest.fixture
def x_display(tmp_path):
    """Xvfb on a display number of its choosing, with trayer as the tray host."""
    missing = [tool for tool in ("Xvfb", "trayer") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (scripts/setup.sh installs them)")
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    tray = None
    try:
        ready, _, _ = select.select([r], [], [], 30)
        assert ready, "Xvfb did not start"
        display = ":" + os.read(r, 64).decode().strip()
        tray = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                                 "--height", "24"], env=dict(os.environ, DISPLAY=display),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        x = XServer(display)
        try:
            wait_for(x.has_tray, 20, what="trayer to own the system tray")
            yield display, x
        finally:
            x.close()
    finally:
        os.close(r)
        for proc in (tray, xvfb):
            if proc is not None:
                stop_process(proc)


class StatusNotifierHost(BusService):
    """What a D-Bus desktop's panel does for tray icons (KDE Plasma, GNOME's AppIndicator): owns
    org.kde.StatusNotifierWatcher, records the items that register, and reads and clicks an item's
    menu over com.canonical.dbusmenu, as the panel does when the user opens it."""

    def __init__(self, address: str):
        self.items: list[str] = []  # bus names of registered items
        super().__init__(address, "org.kde.StatusNotifierWatcher")

    def answer(self, call, member: str) -> None:
        from jeepney import new_method_return

        if member == "RegisterStatusNotifierItem":
            self.items.append(call.header.fields[HEADER_SENDER])
            self.router.send(new_method_return(call))
        elif member == "Get":  # the watcher's properties
            value = {"IsStatusNotifierHostRegistered": ("b", True), "ProtocolVersion": ("i", 0),
                     "RegisteredStatusNotifierItems": ("as", list(self.items))}.get(call.body[1], ("b", False))
            self.router.send(new_method_return(call, "v", (value,)))
        else:
            self.router.send(new_method_return(call))

    def release_watcher(self) -> None:
        from jeepney.bus_messages import message_bus

        from pachtray.gui.desktop_notifications import WATCHER

        assert self.router.send_and_get_reply(message_bus.ReleaseName(WATCHER), timeout=10).body == (1,)

    def _call(self, address, method: str, signature: str, body: tuple):
        from jeepney import new_method_call

        reply = self.router.send_and_get_reply(new_method_call(address, method, signature, body), timeout=10)
        assert reply.header.message_type.name == "method_return", reply.body
        return reply.body

    def menu_of(self, item: str):
        from jeepney import DBusAddress

        props = DBusAddress("/StatusNotifierItem", bus_name=item, interface="org.freedesktop.DBus.Properties")
        (_, path), = self._call(props, "Get", "ss", ("org.kde.StatusNotifierItem", "Menu"))
        return DBusAddress(path, bus_name=item, interface="com.canonical.dbusmenu")

    def open(self, menu, node: int = 0) -> dict[str, int]:
        """AboutToShow then GetLayout of a menu node, as a panel opening it: {label: id} of its entries."""
        self._call(menu, "AboutToShow", "i", (node,))
        return self.entries(menu, node)

    def entries(self, menu, node: int = 0) -> dict[str, int]:
        """GetLayout alone, as a panel that keeps a menu open reads it again: {label: id}."""
        _, (_, _, children) = self._call(menu, "GetLayout", "iias", (node, 1, ["label"]))
        return {child[1]["label"][1].replace("_", ""): child[0] for _, child in children if "label" in child[1]}

    def activate(self, item: str) -> None:
        """A left click on the item's icon in the panel."""
        from jeepney import DBusAddress

        self._call(DBusAddress("/StatusNotifierItem", bus_name=item, interface="org.kde.StatusNotifierItem"),
                   "Activate", "ii", (10, 10))

    def click(self, menu, node: int) -> None:
        self._call(menu, "Event", "isvu", (node, "clicked", ("i", 0), 0))



@pytest.fixture
def dbus_desktop(x_display, session_bus, tmp_path):
    """A session bus with a panel's StatusNotifierWatcher (what makes Qt's tray speak D-Bus) and
    dunst as the notification server, drawn at the top left, a left click choosing the default
    action."""
    if shutil.which("dunst") is None:
        pytest.skip("needs dunst (scripts/setup.sh installs it)")
    display, x = x_display
    address = session_bus
    env = dict(os.environ, DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=address)
    config = tmp_path / "dunstrc"
    config.write_text("[global]\n    origin = top-left\n    offset = 0x0\n    width = 400\n"
                      "    mouse_left_click = do_action, close_current\n")
    dunst = subprocess.Popen(["dunst", "-config", str(config)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    host = None
    try:
        host = StatusNotifierHost(address)
        from jeepney.bus_messages import message_bus

        def served() -> bool:
            reply = host.router.send_and_get_reply(message_bus.NameHasOwner("org.freedesktop.Notifications"),
                                                   timeout=10)
            return bool(reply.body[0])
        wait_for(served, 20, what="dunst to serve notifications")
        yield display, x, address, host
    finally:
        if host is not None:
            host.close()
        stop_process(dunst)


class TrayApp:
    """xcb_app.py in a subprocess, and the events it prints."""

    def __init__(self, daemon, display: str, log: Path, **env: str):
        self._log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, str(XCB_APP), str(daemon.port), str(daemon.sock_path),
                                      str(daemon.mount_dir)],
                                     env=dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", **env),
                                     stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._events.put(json.loads(line))

    def next(self, want, timeout: float) -> dict:
        """The next event `want` accepts, within `timeout` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                event = self._events.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(event)
            if want(event):
                return event
        raise AssertionError(f"no such event in {timeout:g} s; events: {self.seen}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


def _behind(daemon, name: str) -> int:
    mounts = daemon.get(EXTRAS + "/mounts").json()["mounted"]
    return next(m for m in mounts if m["name"] == name)["how_many_commits_behind"]


def _screenshot(display: str, name: str) -> None:
    """What the user sees, kept for a look (imagemagick's import, where it is installed)."""
    if shutil.which("import"):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-window", "root", str(ARTIFACTS / name)], env=dict(os.environ, DISPLAY=display),
                       timeout=30, check=False)


def _click_moves_the_mount(daemon, sdk, repo: str, app: TrayApp, click) -> None:
    """The app announces a new commit on the read-only mount's branch; `click(app)` clicks the
    notification; the mount then shows the new head, and not before."""
    name = f"ck_{repo}"
    try:
        assert app.next(lambda e: "started" in e, 60)["tray"], "the app did not put its icon in the tray"
        app.next(lambda e: "activity" in e, 60)  # attached; what was before is listed, not announced
        with sdk.pfs.commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")) as c:
            c.put_file_from_bytes("/v", b"2")
        told = app.next(lambda e: e.get("told") == "New commits upstream", 60)
        assert told["how"] == "notification" and f"on {repo}@master" in told["message"], told
        assert "click to update the mount" in told["message"]
        click(app)
        app.next(lambda e: e.get("told") == "Refreshed", 30)
        assert _behind(daemon, name) == 0
        assert (daemon.mount_dir / name / "v").read_bytes() == b"2"
    finally:
        app.stop()
        unmount_all(daemon)


def _mounted(daemon, sdk, repo: str) -> None:
    make_repo(sdk, repo, {"/v": b"1"})
    assert daemon.put("/_mount", {"mounts": [{"name": f"ck_{repo}", "repo": repo}]}).ok


def test_clicking_the_upstream_notification_moves_the_mount_to_the_new_head(x_display, shared_daemon, sdk,
                                                                             unique_name, tmp_path):
    display, x = x_display
    repo = unique_name("click")
    _mounted(shared_daemon, sdk, repo)

    def click(app: TrayApp) -> None:
        where = app.next(lambda e: e.get("balloon") == "New commits upstream", 20)
        assert _behind(shared_daemon, f"ck_{repo}") == 1  # nothing but the click moves a read-only mount
        _screenshot(display, "notification.png")
        x.click(where["x"] + where["w"] // 2, where["y"] + where["h"] // 2)
    _click_moves_the_mount(shared_daemon, sdk, repo, TrayApp(shared_daemon, display, tmp_path / "app.log"), click)


def test_clicking_the_upstream_notification_on_a_dbus_desktop_moves_the_mount(dbus_desktop, shared_daemon, sdk,
                                                                              unique_name, tmp_path):
    display, x, address, _ = dbus_desktop
    repo = unique_name("dclick")
    _mounted(shared_daemon, sdk, repo)

    def click(app: TrayApp) -> None:
        time.sleep(1)  # dunst draws it at the top left
        assert _behind(shared_daemon, f"ck_{repo}") == 1
        _screenshot(display, "notification-dbus.png")
        x.click(150, 20)
    app = TrayApp(shared_daemon, display, tmp_path / "app.log", DBUS_SESSION_BUS_ADDRESS=address)
    _click_moves_the_mount(shared_daemon, sdk, repo, app, click)


def test_notifications_go_over_dbus_only_where_the_tray_does(dbus_desktop, monkeypatch, qapp):
    from pachtray.gui.desktop_notifications import DesktopNotifications

    _, _, address, host = dbus_desktop
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    notifier = DesktopNotifications.for_session("Pachtray tests")
    assert notifier is not None
    try:
        first, second = (notifier.notify("Title", "Body", "Go", 2000) for _ in range(2))
        assert isinstance(first, int) and isinstance(second, int) and first != second
    finally:
        notifier.close()
    host.release_watcher()
    assert DesktopNotifications.for_session("Pachtray tests") is None  # an XEmbed tray: Qt's balloon is clickable
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    assert DesktopNotifications.for_session("Pachtray tests") is None


def _panel_menu(app: TrayApp, host: StatusNotifierHost):
    """The app's tray menu as the panel reaches it, once the app is connected to the daemon."""
    assert app.next(lambda e: "started" in e, 60)["tray"]
    wait_for(lambda: host.items, 30, what="the app's tray item to register with the panel")
    menu = host.menu_of(host.items[0])
    wait_for(lambda: any(label.endswith("— connected") for label in host.open(menu)), 30,
             what="the menu to show the cluster connected")
    return menu


def test_the_tray_menu_mounts_a_repo_on_a_dbus_desktop(dbus_desktop, shared_daemon, sdk, unique_name, tmp_path):
    """The panel opens the tray menu over D-Bus (AboutToShow, GetLayout), opens Mount ▸ project ▸
    repo ▸ branch and clicks Read-only: the repo is mounted. A click on the icon opens the window."""
    display, _, address, host = dbus_desktop
    repo = unique_name("0menu")  # sorts first: the menu lists the first MENU_LIMIT repos of a project
    make_repo(sdk, repo, {"/v": b"1"})
    app = TrayApp(shared_daemon, display, tmp_path / "app.log", DBUS_SESSION_BUS_ADDRESS=address)
    try:
        menu = _panel_menu(app, host)
        top = host.open(menu)
        assert {"Mount", "Open window", "Open JupyterLab", "Quit"} <= set(top), top
        entries = wait_for(lambda: (found := host.open(menu, top["Mount"])) and "Loading…" not in found and found,
                           30, what="the Mount menu to list the projects")
        repos = host.open(menu, entries["default"])
        branches = host.open(menu, repos[repo])
        modes = host.open(menu, branches["master"])
        assert all(m["repo"] != repo for m in shared_daemon.get(EXTRAS + "/mounts").json()["mounted"])
        host.click(menu, modes["Read-only"])
        mounted = wait_for(lambda: [m for m in shared_daemon.get(EXTRAS + "/mounts").json()["mounted"]
                                    if m["repo"] == repo], 30, what="the mount the menu asked for")
        assert mounted[0]["mode"] == "ro" and mounted[0]["branch"] == "master"
        assert not any("window" in e for e in app.seen)
        host.activate(host.items[0])  # a left click on the icon opens the window
        app.next(lambda e: "window" in e, 20)
        wait_for(lambda: (shared_daemon.mount_dir / mounted[0]["name"] / "v").exists(), 20, what="the mounted file")
        assert (shared_daemon.mount_dir / mounted[0]["name"] / "v").read_bytes() == b"1"
    finally:
        app.stop()
        unmount_all(shared_daemon)


def test_an_open_mount_menu_fills_in_when_the_repos_arrive_on_a_dbus_desktop(dbus_desktop, shared_daemon, sdk,
                                                                             unique_name, tmp_path):
    """A panel's menu is not a visible QMenu: the Mount menu opened while the repos are on their way
    says "Loading…", and is filled in when they arrive, while it stays open."""
    display, _, address, host = dbus_desktop
    repo = unique_name("0slow")
    make_repo(sdk, repo, {"/v": b"1"})
    app = TrayApp(shared_daemon, display, tmp_path / "app.log", DBUS_SESSION_BUS_ADDRESS=address,
                  PACHTRAY_TEST_SLOW_REPOS="6")
    try:
        menu = _panel_menu(app, host)
        mount = host.open(menu)["Mount"]
        assert list(host.open(menu, mount)) == ["Loading…"]
        wait_for(lambda: "default" in host.entries(menu, mount), 30, what="the open Mount menu to list the projects")
    finally:
        app.stop()


def test_a_hung_notification_server_neither_holds_the_app_up_nor_hides_the_news(x_display, session_bus, shared_daemon,
                                                                               sdk, unique_name, tmp_path):
    """A D-Bus desktop whose notification server takes calls and never answers: the app sends its
    clickable notification and goes on at once (the panel's menu answers while the call waits), and
    when the call times out the news is shown the other way, as Qt's own notification."""
    display, _ = x_display
    host = StatusNotifierHost(session_bus)
    server = NotificationServer(session_bus, "silent")
    repo = unique_name("hung")
    _mounted(shared_daemon, sdk, repo)
    app = TrayApp(shared_daemon, display, tmp_path / "app.log", DBUS_SESSION_BUS_ADDRESS=session_bus)
    try:
        menu = _panel_menu(app, host)
        app.next(lambda e: "activity" in e, 60)
        with sdk.pfs.commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")) as c:
            c.put_file_from_bytes("/v", b"2")
        ours = server.next_call(60)
        assert ours[3] == "New commits upstream" and ours[5] == ["default", "Update the mount"], ours
        started = time.monotonic()
        host.entries(menu)  # the GUI thread serves the panel's menu
        # (the hung server holds a call CALL_TIMEOUT, 1 s: below that the GUI thread did not wait for it)
        assert time.monotonic() - started < 0.9, "the app waited for the notification server"
        told = app.next(lambda e: e.get("told") == "New commits upstream", 10)
        assert told["how"] == "notification"
        qts = server.next_call(10)  # after the call to the hung server timed out
        assert qts[3] == "New commits upstream" and "default" not in qts[5], qts
        assert time.monotonic() - started >= 0.5
    finally:
        app.stop()
        unmount_all(shared_daemon)
        server.close()
        host.close()
