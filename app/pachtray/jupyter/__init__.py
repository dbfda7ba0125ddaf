"""JupyterLab wired to the daemon, without Qt (the tray, the window and `pachtray jupyter` call it).

A server extension lives in the Jupyter *server's* environment; a notebook's libraries live in
its *kernel's* environment; a FUSE mount is visible to every kernel. So Pachtray keeps an
environment of its own whose JupyterLab loads jupyterlab-pachyderm 2.8's panel, and the kernels
stay the user's.

  pins.py         what that environment holds (every version pinned)
  environment.py  making it (progress, cancel, unreachable index), reusing it (stamp)
  server.py       starting, finding (record: pid, port, token) and stopping its JupyterLab
  kernels.py      the user's kernelspecs; adding a Python environment as a kernel
  user_jupyter.py a Jupyter of the user's own, chosen in Settings
  cli.py          `pachtray jupyter`
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pachtray import config
from pachtray.jupyter import server, user_jupyter
from pachtray.jupyter.environment import Progress
from pachtray.jupyter.server import Wiring


@dataclass
class Opened:
    kind: str  # "managed" (Pachtray's JupyterLab) or "own" (the Jupyter chosen in Settings)
    url: str  # the tokened URL of Pachtray's JupyterLab; "" for the user's own (it opens the browser itself)
    pid: int
    reused: bool  # an already running JupyterLab was found
    log_path: str
    env: dict  # the extension's variables it runs with


def uses_managed(settings: config.Settings) -> bool:
    """Pachtray's JupyterLab unless the user chose a Jupyter program in Settings."""
    return not settings.jupyter_path


def open_jupyterlab(settings: config.Settings, mount_dir: str = "", progress: Progress | None = None,
                    cancel: threading.Event | None = None, managed: bool | None = None) -> Opened:
    """What Open JupyterLab does: set up (if needed) and start or find the JupyterLab of the settings."""
    wiring = Wiring.from_settings(settings, mount_dir)
    if uses_managed(settings) if managed is None else managed:
        lab, reused = server.open_managed(wiring, progress=progress, cancel=cancel)
        return Opened("managed", lab.url, lab.pid, reused, lab.log_path, wiring.env())
    log_path = str(server.state_dir() / "user-jupyterlab.log")
    launch = user_jupyter.open_user_jupyter(settings.jupyter_path, wiring, log_path)
    return Opened("own", "", launch.pid, False, log_path, launch.env)
