"""Start-up and process behaviour: single instance, foreign servers, headless mode, a slow daemon,
and settings (Open JupyterLab: test_jupyter_gui.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from PySide6.QtCore import QTimer

from conftest import PY, force_unmount, free_port, stop_process, wait_for
from guihelpers import find_action
from pachtray import config
from pachtray.gui import daemon_process, dialogs


class FakeServer:
    """An HTTP server on a free port; `routes` maps paths to (status, body); `gate` delays answers."""

    def __init__(self, routes: dict[str, tuple[int, dict]], gate: threading.Event | None = None):
        outer = self
        self.routes, self.gate, self.hits = routes, gate, []

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                self.do_GET()

            def do_GET(self):
                path = self.path.split("?")[0]
                outer.hits.append(path)
                if outer.gate is not None:
                    outer.gate.wait(30)
                status, body = outer.routes.get(path, (404, None))
                data = (json.dumps(body) if body is not None else "404 page not found\n").encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def go_mount_server():
    """What an old Go mount-server looks like from outside: /health only."""
    server = FakeServer({"/health": (200, {"status": "running"})})
    yield server
    server.close()


def test_single_instance_second_launch_raises_first(qapp, qtbot):
    from pachtray.gui.single_instance import SingleInstance

    first = SingleInstance()
    assert first.claim()
    try:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        with qtbot.waitSignal(first.activated, timeout=30000):
            second = subprocess.Popen([PY, "-m", "pachtray", "--window"], env=env, stderr=subprocess.PIPE, text=True)
            qtbot.waitUntil(lambda: second.poll() is not None, timeout=30000)
        assert second.returncode == 0
        assert "already running" in second.stderr.read()
    finally:
        first.release()


def test_foreign_server_on_port_is_reported_and_settings_offered_else_the_app_quits(qapp, qtbot, go_mount_server):
    from pachtray.gui.app import PachtrayApp

    found = daemon_process.probe(go_mount_server.port)
    assert found.state == daemon_process.FOREIGN
    assert found.where == f"127.0.0.1:{go_mount_server.port}"
    message = daemon_process.foreign_message(found)
    assert "not a Pachtray daemon" in message and "mount-server" in message and "Settings" in message

    app = PachtrayApp(config.Settings(api_port=go_mount_server.port, sock_path=""))
    try:
        app.start()
        qtbot.waitUntil(lambda: any(d.windowTitle() == "Another server is in the way" for d in dialogs.open_dialogs()),
                        timeout=20000)
        box = next(d for d in dialogs.open_dialogs() if d.windowTitle() == "Another server is in the way")
        assert "HTTP 404" in box.text()
        box.done(0)
        qtbot.waitUntil(lambda: app.settings_dialog is not None and app.settings_dialog.isVisible(), timeout=5000)
        with qtbot.waitSignal(app.quit_requested, timeout=5000) as code:
            app.settings_dialog.reject()  # closed without another port: nothing can start
        assert code.args == [1]
        assert "/pachtray/v1/info" in go_mount_server.hits
    finally:
        app.dispose()


def test_other_ports_chosen_after_a_foreign_server_start_the_daemon_there(qapp, qtbot, go_mount_server, pachd,
                                                                           tmp_path):
    from pachtray.gui.app import PachtrayApp

    config.Settings(api_port=go_mount_server.port, sock_path="").save()
    app = PachtrayApp(config.Settings.load())
    port = free_port()
    try:
        app.start()
        qtbot.waitUntil(lambda: any(d.windowTitle() == "Another server is in the way" for d in dialogs.open_dialogs()),
                        timeout=20000)
        next(d for d in dialogs.open_dialogs() if d.windowTitle() == "Another server is in the way").done(0)
        qtbot.waitUntil(lambda: app.settings_dialog is not None and app.settings_dialog.isVisible(), timeout=5000)
        dialog = app.settings_dialog
        dialog.port_edit.setText(str(port))
        dialog.cluster_radio.setChecked(True)
        dialog.cluster_edit.setText(pachd.address)
        dialog.mount_edit.setText(str(tmp_path / "pfs"))
        dialog.restore_check.setChecked(False)
        dialog.save()
        qtbot.waitUntil(lambda: app.attached == "started" and app.controller.status.connection == "connected",
                        timeout=90000)
        assert app.controller.client.port == port and config.Settings.load().api_port == port
        assert not any(d.windowTitle() == "Restart the daemon?" for d in dialogs.open_dialogs())
    finally:
        if daemon_process.probe(port).state == daemon_process.OURS:
            requests.put(f"http://127.0.0.1:{port}/pachtray/v1/_shutdown", json={}, timeout=30)
            daemon_process.wait_stopped(port)
        force_unmount(tmp_path / "pfs")
        app.dispose()


def test_a_stopped_daemon_is_reported_as_not_answering_and_the_app_stays(qapp, qtbot, daemon_factory, pachd):
    """A daemon stopped with SIGSTOP takes connections and never answers: it is ours, hung, not a
    foreign server, and the tray app does not quit over it (the user resumes it and starts again)."""
    from pachtray.gui.app import PachtrayApp

    d = daemon_factory(pachd.address)
    os.kill(d.proc.pid, signal.SIGSTOP)
    app = PachtrayApp(config.Settings(api_port=d.port, sock_path=""))
    try:
        for found in (daemon_process.probe(d.port, timeout=1.0), daemon_process.probe(free_port(), d.sock_path, 1.0)):
            assert found.state == daemon_process.HUNG, found
            message = daemon_process.hung_message(found)
            assert f"held by process {d.proc.pid} that does not answer" in message and f"kill -CONT {d.proc.pid}" in message
        quits = []
        app.quit_requested.connect(quits.append)
        app.start()
        qtbot.waitUntil(lambda: any(x.windowTitle() == "The daemon does not answer" for x in dialogs.open_dialogs()),
                        timeout=20000)
        box = next(x for x in dialogs.open_dialogs() if x.windowTitle() == "The daemon does not answer")
        box.done(0)
        qtbot.wait(300)
        assert quits == []
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
        app.dispose()


def test_missing_fuse_is_explained_in_a_dialog_at_start(qapp, qtbot, go_mount_server):
    from pachtray import frozen
    from pachtray.gui.app import PachtrayApp

    app = PachtrayApp(config.Settings(api_port=go_mount_server.port, sock_path=""))
    try:
        app.start(fuse_check=lambda: frozen.check_fuse_prerequisite(platform="win32"))
        box = next(d for d in dialogs.open_dialogs() if d.windowTitle() == "FUSE is not installed")
        assert "WinFsp" in box.text()
        box.done(0)
    finally:
        app.dispose()


def test_no_display_runs_daemon_only(pachd, tmp_path):
    port = free_port()
    settings = config.Settings(cluster_address=pachd.address, api_port=port, sock_path=str(tmp_path / "s.sock"),
                               mount_dir=str(tmp_path / "pfs"), restore_mounts=False)
    settings.save()
    assert daemon_process.probe(port, settings.sock_path).state == daemon_process.ABSENT
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.Popen([PY, "-m", "pachtray"], env=env, stderr=open(tmp_path / "err", "w"))
    try:
        wait_for(lambda: daemon_process.probe(port).state == daemon_process.OURS, 60, what="headless daemon")
        assert "no display" in (tmp_path / "err").read_text()
        assert "running the daemon only" in (tmp_path / "err").read_text()
        assert daemon_process.probe(free_port(), settings.sock_path).state == daemon_process.OURS  # via the socket
        # a second headless start finds it and leaves it alone
        again = subprocess.run([PY, "-m", "pachtray", "--headless"], capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "already running" in again.stderr
    finally:
        stop_process(proc, timeout=30)
        force_unmount(tmp_path / "pfs")
    assert proc.returncode == 0


def test_slow_daemon_does_not_block_event_loop(qapp, qtbot):
    """While a request to the daemon hangs, the GUI thread keeps running its timers."""
    from pachtray.gui.client import DaemonClient
    from pachtray.gui.controller import Controller

    gate = threading.Event()
    server = FakeServer({"/pachtray/v1/info": (200, {"pachtray": "x", "connection": "connected", "auth": "off"}),
                         "/config": (200, {"cluster_status": "AUTH_DISABLED", "pachd_address": "grpc://x:1"}),
                         "/pachtray/v1/mounts": (200, {"mounted": []})}, gate=gate)
    controller = Controller(DaemonClient(server.port))
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(controller.tasks.pending))
    timer.start(10)
    try:
        controller.refresh()
        qtbot.waitUntil(lambda: len(ticks) >= 30, timeout=20000)
        assert all(pending > 0 for pending in ticks), "the request finished early: the server was not slow"
        assert not controller.status.reachable
        controller.unmount("some-mount")  # a user action: the tray shows busy until it is answered
        assert controller.state() == "busy"
        gate.set()
        qtbot.waitUntil(lambda: controller.status.reachable and not controller.busy, timeout=20000)
        assert controller.state() == "connected"
    finally:
        timer.stop()
        server.close()
        controller.tasks.close(10000)


def test_unreachable_daemon_shows_error_state(qapp, qtbot):
    from pachtray.gui.client import DaemonClient
    from pachtray.gui.controller import Controller

    controller = Controller(DaemonClient(free_port()))
    try:
        with qtbot.waitSignal(controller.status_changed, timeout=20000):
            controller.refresh()
        assert controller.state() == "error"
        assert not controller.status.reachable
    finally:
        controller.tasks.close(10000)


# ----------------------------------------------------------------- settings


def test_settings_dialog_validates_and_saves(qapp, qtbot, tmp_path):
    from pachtray.gui.settings_dialog import SettingsDialog, autostart_path

    saved = []
    tasks_run = []

    def run_task(fn, on_result, on_error):
        tasks_run.append(fn)
        try:
            on_result(fn())
        except Exception as e:  # noqa: BLE001
            on_error(e)

    dialog = SettingsDialog(config.Settings(), run_task, lambda old, new: saved.append((old, new)))
    tasks_run.clear()  # the dialog lists the kernels on a worker when it opens
    dialog.show()
    for edit in (dialog.cluster_edit, dialog.ca_edit):  # the examples in the empty fields are read whole
        assert edit.width() > edit.fontMetrics().horizontalAdvance(edit.placeholderText()), edit.placeholderText()
    dialog.port_edit.setText("nine")
    dialog.local_port_edit.setText("port")
    dialog.save()
    assert "not 'port'" in dialog.problems["local_port"].text()
    dialog.port_edit.setText("31111")
    dialog.local_port_edit.setText("31111")
    dialog.save()
    assert dialog.problems["local_port"].text() == "must differ from the API port" and not saved
    dialog.local_port_edit.setText("31112")
    dialog.port_edit.setText("nine")
    dialog.cluster_radio.setChecked(True)
    assert not dialog.local_port_edit.isEnabled()  # (a cluster is chosen: no embedded server)
    assert dialog.edited()[0].local_port == 30650  # what the field off holds is not taken (nor checked)
    dialog.cluster_edit.setText("grpc://bad host:port")
    dialog.ca_edit.setText(str(tmp_path / "missing-ca.pem"))
    dialog.sock_edit.setText("relative.sock")
    dialog.save()
    assert not saved and not tasks_run
    assert "port number" in dialog.problems["api_port"].text()
    assert "poorly formatted" in dialog.problems["cluster_address"].text()
    assert "no such file" in dialog.problems["tls_ca_file"].text()
    assert "absolute" in dialog.problems["sock_path"].text()
    assert not config.settings_path().exists()

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    dialog.port_edit.setText("9123")
    dialog.cluster_edit.setText("grpcs://pachd.example.com:31400")
    dialog.ca_edit.setText(str(ca))
    dialog.sock_edit.setText(str(tmp_path / "pfs.sock"))
    dialog.mount_edit.setText(str(tmp_path / "pfs"))
    dialog.login_check.setChecked(True)
    dialog.token_combo.setCurrentIndex(dialog.token_combo.findData("session"))
    dialog.save()
    assert saved and all(not label.isVisible() for label in dialog.problems.values())
    stored = json.loads(config.settings_path().read_text())
    assert stored["token_storage"] == "session"
    assert stored["api_port"] == 9123 and stored["cluster_address"] == "grpcs://pachd.example.com:31400"
    assert stored["local_port"] == 30650  # (typed while Local was chosen, then Cluster: not taken)
    assert stored["tls_ca_file"] == str(ca) and stored["start_at_login"] is True
    entry = autostart_path().read_text()
    assert "Exec=" in entry and "pachtray" in entry

    dialog = SettingsDialog(config.Settings.load(), run_task, lambda old, new: saved.append((old, new)))
    assert dialog.cluster_radio.isChecked() and dialog.port_edit.text() == "9123"
    assert dialog.token_combo.currentData() == "session"
    dialog.local_radio.setChecked(True)
    dialog.local_port_edit.setText("31112")
    dialog.login_check.setChecked(False)
    dialog.save()
    assert config.Settings.load().cluster_address == "" and config.Settings.load().local_port == 31112
    command = daemon_process.daemon_command(config.Settings.load())
    assert command[command.index("--local-pachd-port") + 1] == "31112"
    assert not autostart_path().exists()
    from pachtray.gui.settings_dialog import needs_restart

    assert needs_restart(saved[0][0], saved[0][1]) and needs_restart(saved[1][0], saved[1][1])


@pytest.mark.parametrize("env,expected", [
    ({}, False),
    ({"DISPLAY": ":0"}, True),
    ({"WAYLAND_DISPLAY": "wayland-0"}, True),
    ({"QT_QPA_PLATFORM": "offscreen"}, True),
    ({"QT_QPA_PLATFORM": "xcb"}, False),
    ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":1"}, True),
])
def test_has_display(monkeypatch, env, expected):
    from pachtray.gui.app import has_display

    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert has_display() is expected


def test_starts_daemon_when_none_is_running_and_stops_it_on_quit(qapp, qtbot, pachd, tmp_path):
    from pachtray.gui.app import PachtrayApp

    settings = config.Settings(cluster_address=pachd.address, api_port=free_port(),
                               sock_path=str(tmp_path / "pfs.sock"), mount_dir=str(tmp_path / "pfs"),
                               restore_mounts=False)
    settings.save()
    app = PachtrayApp(settings)
    try:
        app.start(show_window=True)
        qtbot.waitUntil(lambda: app.attached == "started" and app.controller.status.connection == "connected",
                        timeout=90000)
        assert app.window.windowTitle() == f"Pachtray — {pachd.address}"
        assert os.path.ismount(tmp_path / "pfs")
        assert (config.data_dir() / "daemon.log").exists()

        def ask_restart(port: int):
            dialog = app.open_settings()
            dialog.port_edit.setText(str(port))
            dialog.restore_check.setChecked(True)  # (a change that needs no restart, kept either way)
            dialog.save()
            qtbot.waitUntil(lambda: any(d.windowTitle() == "Restart the daemon?" for d in dialogs.open_dialogs()),
                            timeout=20000)
            return next(d for d in dialogs.open_dialogs() if d.windowTitle() == "Restart the daemon?")

        # declined: the settings the daemon runs with stay saved (else the next start looks elsewhere)
        old_port, new_port = settings.api_port, free_port()
        confirm = ask_restart(new_port)
        with qtbot.waitSignal(app.controller.notify, timeout=20000,
                              check_params_cb=lambda title, message, _e: "kept as it runs them" in message):
            next(b for b in confirm.buttons() if b.text() == "Keep the daemon as it runs").click()
        saved = config.Settings.load()
        assert (saved.api_port, saved.restore_mounts) == (old_port, True) and app.settings.api_port == old_port

        # a port another program holds: nothing is stopped, the settings stay the daemon's
        squatter = FakeServer({})
        try:
            next(b for b in ask_restart(squatter.port).buttons() if b.text() == "Restart now").click()
            qtbot.waitUntil(lambda: any(d.windowTitle() == "API port in use" for d in dialogs.open_dialogs()),
                            timeout=30000)
            refused = next(d for d in dialogs.open_dialogs() if d.windowTitle() == "API port in use")
            assert f"127.0.0.1:{squatter.port}" in refused.text() and "runs as before" in refused.text()
            refused.done(0)
        finally:
            squatter.close()
        qtbot.waitUntil(lambda: app.settings.api_port == old_port and config.Settings.load().api_port == old_port,
                        timeout=20000)
        qtbot.waitUntil(lambda: app.controller.status.connection == "connected", timeout=30000)
        assert daemon_process.probe(old_port).state == daemon_process.OURS

        # a new API port in Settings restarts the daemon there
        next(b for b in ask_restart(new_port).buttons() if b.text() == "Restart now").click()
        qtbot.waitUntil(lambda: app.controller.client.port == new_port and
                        app.controller.status.connection == "connected", timeout=90000)
        assert config.Settings.load().api_port == new_port
        assert daemon_process.probe(old_port).state == daemon_process.ABSENT
        assert not any(d.windowTitle() == "Pachtray daemon unreachable" for d in dialogs.open_dialogs())
        settings = app.settings

        # the daemon goes away (it crashed, or something stopped it): the tray and the window offer
        # to start it again, and that brings everything back
        assert not app.window_actions["start"].isVisible()
        requests.put(f"http://127.0.0.1:{new_port}/pachtray/v1/_shutdown", json={}, timeout=30)
        assert daemon_process.wait_stopped(new_port)
        qtbot.waitUntil(lambda: not app.controller.status.reachable, timeout=30000)
        assert app.window_actions["start"].isVisible() and app.window_actions["start"].isEnabled()
        assert (app.window.cluster_label.text(), app.window.user_label.text()) == ("Daemon not running", "")
        told = [d for d in dialogs.open_dialogs() if d.windowTitle() == "Pachtray daemon unreachable"]
        assert len(told) == 1 and "Start the daemon" in told[0].text(), [d.text() for d in told]
        told[0].done(0)
        app.tray.rebuild()
        find_action(app.tray.menu, ["Start the daemon"]).trigger()
        qtbot.waitUntil(lambda: app.controller.status.connection == "connected", timeout=90000)
        assert not app.window_actions["start"].isVisible() and os.path.ismount(tmp_path / "pfs")
        assert app.window.user_label.text() == "Auth off"

        box = app.request_quit()
        assert box.informativeText() == "No mounts are active."
        with qtbot.waitSignal(app.quit_requested, timeout=90000):
            next(b for b in box.buttons() if b.text() == "Stop everything").click()
        assert daemon_process.probe(settings.api_port, settings.sock_path).state == daemon_process.ABSENT
        assert not os.path.ismount(tmp_path / "pfs")
    finally:
        if daemon_process.probe(settings.api_port).state == daemon_process.OURS:
            requests.put(f"http://127.0.0.1:{settings.api_port}/pachtray/v1/_shutdown", json={}, timeout=30)
            daemon_process.wait_stopped(settings.api_port)
        force_unmount(tmp_path / "pfs")
        app.dispose()


def test_foreign_server_on_socket_is_detected(tmp_path):
    import socketserver

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"404 page not found\n"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self):
            return "unix"

        def log_message(self, *args):
            pass

    class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    sock = str(tmp_path / "old-mount-server.sock")
    server = UnixHTTPServer(sock, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        found = daemon_process.probe(free_port(), sock)
        assert found.state == daemon_process.FOREIGN and found.where == sock
        assert "HTTP 404" in found.detail
    finally:
        server.shutdown()
        server.server_close()
    assert os.path.exists(sock)  # left behind: a stale socket counts as nothing there
    assert daemon_process.probe(free_port(), sock).state == daemon_process.ABSENT
    os.unlink(sock)


def test_cli_window_attaches_and_exits_cleanly_on_sigterm(qapp, tmp_path):
    """`pachtray --window` as a process: attaches to a running daemon; SIGTERM ends the GUI only."""
    from pachtray.gui.single_instance import SingleInstance

    server = FakeServer({"/pachtray/v1/info": (200, {"pachtray": "x", "connection": "connected", "auth": "off"}),
                         "/config": (200, {"cluster_status": "AUTH_DISABLED", "pachd_address": "grpc://x:1"}),
                         "/pachtray/v1/mounts": (200, {"mounted": []}),
                         "/pachtray/v1/repos": (200, {"projects": [], "repos": []}),
                         "/pachtray/v1/events": (200, {"generation": 1})})
    try:
        config.Settings(api_port=server.port, sock_path="", mount_dir=str(tmp_path / "pfs")).save()
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        gui = subprocess.Popen([PY, "-m", "pachtray", "--window"], env=env, stderr=open(tmp_path / "err", "w"))
        try:
            wait_for(lambda: "/pachtray/v1/mounts" in server.hits, 60, what="the GUI to poll the daemon")
            assert gui.poll() is None
            assert SingleInstance().notify_running()  # it holds the single-instance socket
            gui.send_signal(signal.SIGTERM)
            assert gui.wait(30) == 0, (tmp_path / "err").read_text()
        finally:
            stop_process(gui)
        assert "/pachtray/v1/info" in server.hits and not any(h.startswith("/pachtray/v1/_shutdown")
                                                               for h in server.hits)
    finally:
        server.close()


def test_a_restart_is_refused_before_anything_stops_when_what_it_needs_is_held(tmp_path):
    """check_ports_free: the embedded port when going back to Local (unchanged, but no embedded
    server of ours held it while a cluster was used), and the socket path."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    sock = str(tmp_path / "other.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(sock)
    unix.listen()
    try:
        port = holder.getsockname()[1]
        on_cluster = config.Settings(cluster_address="grpc://pachd.example.com:30650", local_port=port)
        with pytest.raises(daemon_process.PortTaken) as taken:
            daemon_process.check_ports_free(on_cluster, dataclasses.replace(on_cluster, cluster_address=""))
        assert taken.value.title == "Embedded server port in use" and f"127.0.0.1:{port}" in str(taken.value)
        local = config.Settings(local_port=port)
        daemon_process.check_ports_free(local, local)  # our own embedded server holds it: nothing to refuse
        with pytest.raises(daemon_process.PortTaken) as taken:
            daemon_process.check_ports_free(on_cluster, dataclasses.replace(on_cluster, sock_path=sock))
        assert taken.value.title == "API socket in use" and sock in str(taken.value)
    finally:
        holder.close()
        unix.close()
