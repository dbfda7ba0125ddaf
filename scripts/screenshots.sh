#!/usr/bin/env bash
# Screenshots for the README: starts Xvfb with a tray host (trayer), a daemon with its embedded
# local server on free ports, seeds repos through pachyderm_sdk, then runs the tray app and saves
# docs/screenshots/window.png, window-mounts.png, window-activity.png, commit-dialog.png and tray-menu.png. Everything it
# starts it stops.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
if ! command -v trayer >/dev/null || ! command -v import >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends trayer imagemagick >/dev/null
  else
    echo "screenshots: needs trayer and imagemagick: sudo apt-get install trayer imagemagick" >&2
    exit 1
  fi
fi

py="$here/.venv/bin/python"
out="$here/docs/screenshots"
mkdir -p "$out"
work="$(mktemp -d /tmp/pachtray-shots.XXXXXX)"
pids=()
cleanup() {
  set +e
  [ -n "${api_port:-}" ] && curl -s -X PUT -d '{}' "http://127.0.0.1:$api_port/_unmount_all" >/dev/null
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill "${pids[i]}" 2>/dev/null; wait "${pids[i]}" 2>/dev/null; done
  mountpoint -q "$work/pfs" && fusermount3 -uz "$work/pfs"
  rm -rf "$work"
}
trap cleanup EXIT

export PACH_CONFIG="$work/pachctl.json" PACHTRAY_DATA_DIR="$work/data" XDG_CONFIG_HOME="$work/config" \
  XDG_DATA_HOME="$work/share" XDG_RUNTIME_DIR="$work/run" PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port="$(free_port)"; pachd_port="$(free_port)"

display=99
while [ -e "/tmp/.X11-unix/X$display" ] || [ -e "/tmp/.X$display-lock" ]; do display=$((display+1)); done
Xvfb ":$display" -screen 0 1360x860x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
export DISPLAY=":$display"
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done
trayer --edge top --align left --widthtype request --height 28 --SetDockType true --transparent false \
  --tint 0x2b2b2b >"$work/trayer.log" 2>&1 &
pids+=($!)

"$py" -m pachtray daemon --port "$api_port" --sock-path "$work/pfs.sock" --mount-dir "$work/pfs" \
  --local-pachd-port "$pachd_port" --log-file "$work/daemon.log" &
pids+=($!)
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$api_port/pachtray/v1/info" | grep -q '"connection": "connected"' && break
  sleep 0.2
done

"$py" - "$pachd_port" "$api_port" "$work" <<'EOF'
"""Seed the embedded server through pachyderm_sdk and mount a few repos over REST."""
import sys
import requests
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

pachd_port, api_port, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = Client(host="127.0.0.1", port=pachd_port)
c.pfs.create_project(project=pfs.Project(name="vision"), description="Computer vision experiments")
repos = [
    ("default", "images", "Raw camera images", {"/2024/cam-a/%03d.jpg" % i: b"\xff\xd8" + bytes(1500 * (i + 1)) for i in range(24)}),
    ("default", "labels", "Bounding boxes (COCO json)", {"/labels-%02d.json" % i: b'{"boxes": []}' * 40 for i in range(12)}),
    ("default", "models", "Trained model checkpoints", {"/resnet50/epoch-%02d.pt" % i: bytes(90000) for i in range(6)}),
    ("vision", "edges", "Edge maps produced by the edges pipeline", {"/e%02d.png" % i: bytes(4000) for i in range(8)}),
    ("vision", "training-data", "Curated training set", {"/train/%04d.npy" % i: bytes(2048) for i in range(40)}),
]
for project, name, description, files in repos:
    repo = pfs.Repo(name=name, type="user", project=pfs.Project(name=project))
    c.pfs.create_repo(repo=repo, description=description)
    items = list(files.items())
    for n, chunk in enumerate((items[: len(items) // 2], items[len(items) // 2:])):
        with c.pfs.commit(branch=pfs.Branch(repo=repo, name="master"),
                          description=["initial import", "add second batch"][n]) as commit:
            for path, data in chunk:
                commit.put_file_from_bytes(path, data)
images = pfs.Repo(name="images", type="user", project=pfs.Project(name="default"))
c.pfs.create_branch(branch=pfs.Branch(repo=images, name="staging"),
                    head=pfs.Commit(branch=pfs.Branch(repo=images, name="master")))
with c.pfs.commit(branch=pfs.Branch(repo=images, name="master"), description="night shots from cam-b") as commit:
    for i in range(5):
        commit.put_file_from_bytes("/2024/cam-b/%03d.jpg" % i, bytes(3000))
base = f"http://127.0.0.1:{api_port}"
r = requests.put(base + "/_mount", json={"mounts": [
    {"name": "images", "repo": "images", "branch": "master"},
    {"name": "labels", "repo": "labels", "branch": "master", "mode": "rw"},
    {"name": "vision_edges", "project": "vision", "repo": "edges", "branch": "master"},
]}, timeout=60)
r.raise_for_status()
# a refused request, for the Activity tab
requests.put(base + "/_mount", json={"mounts": [{"name": "models_dev", "repo": "models", "branch": "dev"}]},
             timeout=60)
with open(f"{work}/pfs/labels/labels-new.json", "w") as f:
    f.write('{"boxes": [[1, 2, 3, 4]]}')
with open(f"{work}/pfs/labels/labels-03.json", "w") as f:  # changed here ...
    f.write('{"boxes": [[5, 6, 7, 8]]}' * 30)
import os
os.unlink(f"{work}/pfs/labels/labels-07.json")
os.rename(f"{work}/pfs/labels/labels-10.json", f"{work}/pfs/labels/labels-10-fixed.json")
labels = pfs.Repo(name="labels", type="user", project=pfs.Project(name="default"))
with c.pfs.commit(branch=pfs.Branch(repo=labels, name="master"), description="a colleague's fix") as commit:
    commit.put_file_from_bytes("/labels-03.json", b'{"boxes": [[0, 0, 1, 1]]}')  # ... and upstream
EOF

mkdir -p "$XDG_CONFIG_HOME/pachtray"
cat >"$XDG_CONFIG_HOME/pachtray/settings.json" <<EOF
{"api_port": $api_port, "sock_path": "$work/pfs.sock", "mount_dir": "$work/pfs", "restore_mounts": false}
EOF

QT_QPA_PLATFORM=xcb "$py" - "$out" <<'EOF'
"""Drive the real app under Xvfb: select a repo, branch and commit, then grab the window and the tray menu."""
import subprocess
import sys
import time

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from pachtray import config
from pachtray.gui.app import PachtrayApp

out = sys.argv[1]
qapp = QApplication([])
qapp.setQuitOnLastWindowClosed(False)
app = PachtrayApp(config.Settings.load())
qapp.setWindowIcon(app.app_icon)
deadline = time.monotonic() + 20
while not QSystemTrayIcon.isSystemTrayAvailable() and time.monotonic() < deadline:
    qapp.processEvents()
    time.sleep(0.1)
app.start(show_window=True)


def wait(predicate, seconds=30.0, what="condition"):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qapp.processEvents()
        if predicate():
            return
        time.sleep(0.02)
    raise SystemExit(f"screenshots: timed out waiting for {what}")


def settle(seconds=0.6):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qapp.processEvents()
        time.sleep(0.02)


w = app.window
w.move(40, 60)
w.resize(1280, 760)
wait(lambda: app.controller.status.reachable and len(app.controller.status.mounted) == 3, what="daemon status")
wait(lambda: w.browser.select_repo("default", "images"), what="repo list")
w.browser.repo_tree.expandAll()
wait(lambda: w.browser.branches_model.rowCount() == 2 and not w.browser.branches_model.loading, what="branches")
w.browser.branch_table.setCurrentIndex(w.browser.branches_model.index(0, 0))
wait(lambda: w.browser.commits_model.rowCount() == 3 and not w.browser.commits_model.loading, what="commits")
w.browser.commit_table.setCurrentIndex(w.browser.commits_model.index(0, 0))
wait(lambda: w.browser.files_model.rowCount() > 0 and not w.browser.files_model.loading, what="files")
for depth in ("/2024", "/2024/cam-a"):  # into a folder of images
    w.browser.file_table.doubleClicked.emit(w.browser.files_model.index(0, 0))
    wait(lambda: w.browser.folder_label.text().endswith(depth) and w.browser.files_model.rowCount() >= 2
         and not w.browser.files_model.loading, what=f"folder {depth}")
settle(1.0)
w.grab().save(f"{out}/window.png")
w.tabs.setCurrentIndex(1)
w.select_mount("labels")
settle(0.5)
w.grab().save(f"{out}/window-mounts.png")
w.tabs.setCurrentIndex(next(i for i in range(w.tabs.count()) if w.tabs.tabText(i) == "Activity"))
activity = w.tabs.currentWidget()
wait(lambda: activity.table.rowCount() >= 4, what="activity")
settle(0.5)
w.grab().save(f"{out}/window-activity.png")
w.tabs.setCurrentIndex(0)
w.select_mount("labels")
review = w._mount_action("commit")  # the commit dialog of the rw mount "labels"
wait(lambda: review.list.topLevelItemCount() == 5 and review.commit_button.isEnabled(), what="the changes")
review.message.setPlainText("Fix the boxes of frame 3; drop a duplicate")
review.list.topLevelItem(1).setSelected(True)
settle(0.8)
review.grab().save(f"{out}/commit-dialog.png")
review.reject()  # (docs/screenshots/commit-dialog.png)

w.hide()
desktop = QWidget()  # a plain desktop behind the menus (Xvfb's root window is black)
desktop.setWindowFlags(Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnBottomHint)
desktop.setStyleSheet("background: qlineargradient(x1:0, y1:0, x2:1, y2:1, stop:0 #dfe7f5, stop:1 #b9c9e6);")
desktop.setGeometry(qapp.primaryScreen().geometry().adjusted(0, 28, 0, 0))
desktop.show()
settle(0.5)
app.tray.menu.aboutToShow.emit()
geometry = app.tray.icon.geometry()
anchor = QPoint(geometry.left(), geometry.bottom() + 2) if geometry.isValid() else QPoint(4, 30)
app.tray.menu.popup(anchor)
settle(0.8)
menus = [app.tray.menu]
for text in ("Mount", "default", "images", "master"):
    action = next(a for a in menus[-1].actions() if a.text() == text)
    menus[-1].setActiveAction(action)
    settle(0.6)
    menus.append(action.menu())
# the tray (trayer at the top left) and the open menus, straight from the X server
shown = [m for m in menus if m.isVisible()]
left = 0
right = min(qapp.primaryScreen().geometry().right(), max(m.geometry().right() for m in shown) + 16)
bottom = max(m.geometry().bottom() for m in shown) + 16
subprocess.run(["import", "-window", "root", "-crop", f"{right - left}x{bottom}+{left}+0", "+repage",
                f"{out}/tray-menu.png"], check=True)
app.controller.stop()
app.controller.tasks.close(10000)
EOF
# the AppStream metainfo states each picture's size; keep it in step with what was just written
python3 - "$out" packaging/linux/io.github.pachtray.Pachtray.metainfo.xml <<'EOF'
import re, struct, sys
from pathlib import Path
out, metainfo = Path(sys.argv[1]), Path(sys.argv[2])
def sized(match):
    name = match.group(3)
    width, height = struct.unpack(">II", (out / name).read_bytes()[16:24])
    return f'{match.group(1)}width="{width}" height="{height}"{match.group(2)}{name}'
pattern = r'(<image [^>]*?)width="\d+" height="\d+"([^>]*>[^<]*/docs/screenshots/)([\w.-]+\.png)'
metainfo.write_text(re.sub(pattern, sized, metainfo.read_text()))
EOF
echo "screenshots: wrote window.png, window-mounts.png, window-activity.png, commit-dialog.png and tray-menu.png in $out (sizes in the metainfo)"
