"""gui.desktop_open with the real xdg-open: what the desktop opens it with is the only stand-in
(BROWSER, which xdg-open uses when no desktop environment is running). A failure is a dialog that
names the path; success shows nothing."""

from __future__ import annotations

import os
import stat

import pytest

from pachtray.gui import desktop_open, dialogs

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/xdg-open"), reason="needs xdg-utils")


@pytest.fixture
def no_desktop(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "DESKTOP_SESSION", "KDE_FULL_SESSION",
                 "GNOME_DESKTOP_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "/nonexistent")  # no user's mime defaults


def _shown(qtbot, title: str):
    qtbot.waitUntil(lambda: any(d.windowTitle() == title for d in dialogs.open_dialogs()), timeout=20000)
    box = next(d for d in dialogs.open_dialogs() if d.windowTitle() == title)
    text = box.text()
    box.done(0)
    return text


def test_no_program_to_open_a_folder_with_is_a_dialog_naming_it(qapp, qtbot, no_desktop, monkeypatch, tmp_path):
    monkeypatch.setenv("BROWSER", str(tmp_path / "no-such-program"))
    folder = tmp_path / "pfs" / "images"
    folder.mkdir(parents=True)
    desktop_open.open_folder(None, str(folder))
    text = _shown(qtbot, "Cannot open folder")
    assert f"Open {folder} in a file manager yourself." in text and "no program" in text, text


def test_a_folder_the_desktop_opens_shows_no_dialog(qapp, qtbot, no_desktop, monkeypatch, tmp_path):
    seen = tmp_path / "opened"
    program = tmp_path / "file-manager"
    program.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {seen}\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BROWSER", str(program))
    folder = tmp_path / "a folder"
    folder.mkdir()
    before = len(dialogs.open_dialogs())
    desktop_open.open_folder(None, str(folder))
    qtbot.waitUntil(lambda: seen.exists() and seen.read_text() != "", timeout=20000)
    assert seen.read_text() in (str(folder), folder.as_uri())
    qtbot.waitUntil(lambda: not desktop_open._running, timeout=10000)
    assert len(dialogs.open_dialogs()) == before


def test_without_xdg_open_the_address_is_given_to_the_user(qapp, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    desktop_open.open_address(None, "https://login.example/authorize?state=abc")
    text = _shown(qtbot, "Cannot open the browser")
    assert "xdg-open is not installed" in text and "https://login.example/authorize?state=abc" in text
