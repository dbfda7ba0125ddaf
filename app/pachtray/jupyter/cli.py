"""`pachtray jupyter [--no-browser] [--stop] [--setup-only]`: Pachtray's JupyterLab from a terminal.

Sets it up if needed (progress on stderr), makes sure the daemon of the current settings runs,
starts or finds the JupyterLab wired to it, and prints its URL as the last line on stdout; the
JupyterLab keeps running after this exits. Exit status: 0 done, 1 failed, 3 the package index
could not be reached, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser

from pachtray import config
from pachtray.errors import PachtrayError
from pachtray.jupyter import server
from pachtray.jupyter.environment import IndexUnreachable, ManagedEnv, SetupCancelled
from pachtray.jupyter.server import Wiring

PROG = "pachtray jupyter"


class _StderrProgress:
    """One line per new step, with the share done when it is known."""

    def __init__(self):
        self.last = ""

    def __call__(self, message: str, fraction: float | None) -> None:
        if message == self.last:
            return
        self.last = message
        done = f"[{fraction * 100:3.0f}%] " if fraction is not None else ""
        print(f"{PROG}: {done}{message}", file=sys.stderr, flush=True)


def _ensure_daemon(settings: config.Settings) -> None:
    """The extension needs the daemon: start it as the tray would when nothing answers."""
    from pachtray.gui import daemon_process  # Qt-free

    found = daemon_process.probe(settings.api_port, settings.sock_path)
    if found.state == daemon_process.FOREIGN:
        raise PachtrayError(daemon_process.foreign_message(found), title="Another server is in the way")
    if found.state == daemon_process.ABSENT:
        print(f"{PROG}: starting the Pachtray daemon (API on 127.0.0.1:{settings.api_port})", file=sys.stderr)
        daemon_process.start_daemon(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Open Pachtray's JupyterLab (JupyterLab 3.6 with the "
                                     "Pachyderm panel) wired to the daemon of your settings; prints its URL last.")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--stop", action="store_true", help="stop Pachtray's JupyterLab (and its kernels)")
    parser.add_argument("--setup-only", action="store_true",
                        help="make or check the JupyterLab environment; start nothing (prints its folder)")
    args = parser.parse_args(argv)
    settings, problem = config.Settings.load_or_default()
    if problem:
        print(f"{PROG}: {problem}", file=sys.stderr)

    if args.stop:
        lab = server.stop()
        print(f"{PROG}: " + (f"stopped JupyterLab on port {lab.port}" if lab else "JupyterLab was not running"),
              file=sys.stderr)
        return 0
    try:
        if args.setup_only:
            print(ManagedEnv().ensure(_StderrProgress()).path)
            return 0
        wiring = Wiring.from_settings(settings)
        wiring.env()  # a wiring the extension cannot use fails before anything starts
        _ensure_daemon(settings)
        lab, reused = server.open_managed(wiring, progress=_StderrProgress())
    except IndexUnreachable as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 3
    except (SetupCancelled, KeyboardInterrupt):
        print(f"{PROG}: interrupted; nothing half-made was kept", file=sys.stderr)
        return 130
    except PachtrayError as e:
        print(f"{PROG}: {e.title}: {e}", file=sys.stderr)
        return 1
    print(f"{PROG}: JupyterLab {'is already running' if reused else 'started'} (pid {lab.pid}, log {lab.log_path}); "
          f"stop it with `{PROG} --stop`", file=sys.stderr)
    if not args.no_browser:
        webbrowser.open(lab.url)
    print(lab.url, flush=True)
    return 0
