"""Pachtray's own JupyterLab environment: a venv under the data dir holding the pinned set (pins.py).

Made once (a few minutes: pip downloads JupyterLab), then reused while its stamp matches the pins.
Set-up reports progress, can be cancelled, removes a half-made environment (a later attempt starts
clean) and tells an unreachable package index apart from other failures. pip is the user's own
(their pip.conf, PIP_INDEX_URL and proxy apply).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from pachtray import config
from pachtray.errors import PachtrayError
from pachtray.jupyter.pins import CONSTRAINTS, PYTHONS, REQUIREMENTS

ENV_VAR = "PACHTRAY_JUPYTER_ENV"  # for tests: where the environment is (a cached one, e.g. .venv-jlab)
STAMP_FILE = "pachtray-jupyter.stamp"
RECIPE = 1  # bump when the way the environment is made changes (not the pins: they are hashed)

Progress = Callable[[str, Optional[float]], None]  # message, fraction done (None: unknown)

# pip's words for "the index did not answer" (urllib3 and socket errors it prints while retrying)
_UNREACHABLE = re.compile(r"NewConnectionError|Failed to establish a new connection|Name or service not known|"
                          r"Temporary failure in name resolution|nodename nor servname|getaddrinfo failed|"
                          r"ConnectTimeoutError|Connection to \S+ timed out|Read timed out|ProxyError|"
                          r"Network is unreachable|No route to host|Connection refused|SSLError")


class SetupCancelled(PachtrayError):
    """The user cancelled the set-up; nothing half-made is left behind."""

    def __init__(self):
        super().__init__("JupyterLab set-up was cancelled; it starts again from the beginning next time.",
                         title="JupyterLab set-up cancelled")


class IndexUnreachable(PachtrayError):
    """pip could not reach the package index (offline, proxy, wrong index URL)."""


class SetupFailed(PachtrayError):
    """The environment could not be made for another reason (the message says which, and what to do)."""


def default_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or config.data_dir() / "jupyterlab" / "env")


def stamp() -> str:
    """Identifies what an environment made now would hold."""
    text = json.dumps([RECIPE, list(REQUIREMENTS), CONSTRAINTS])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _python_version(python: str) -> tuple[int, int] | None:
    if python == sys.executable and not getattr(sys, "frozen", False):
        return sys.version_info[:2]
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=30)
        major, minor = out.stdout.split()
        return int(major), int(minor)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def find_python() -> str:
    """A Python the pins have wheels for: the one running Pachtray if it fits, else one on PATH."""
    candidates = [] if getattr(sys, "frozen", False) else [sys.executable]
    candidates += [shutil.which(f"python{major}.{minor}") for major, minor in reversed(PYTHONS)]
    candidates += [shutil.which("python3"), shutil.which("python")]
    tried: set[str] = set()
    seen: list[str] = []
    for python in filter(None, candidates):
        if python in tried:
            continue
        tried.add(python)
        version = _python_version(python)
        if version in PYTHONS:
            return python
        seen.append(f"{python} ({'.'.join(map(str, version)) if version else 'does not run'})")
    wanted = " or ".join(f"{major}.{minor}" for major, minor in PYTHONS)
    raise SetupFailed(f"Pachtray's JupyterLab needs Python {wanted} (JupyterLab 3.6, which the Pachyderm panel "
                      f"needs, has no builds for other versions). Found: {', '.join(seen) or 'no Python on PATH'}.\n\n"
                      f"Install Python {PYTHONS[-1][0]}.{PYTHONS[-1][1]} (for example "
                      f"`sudo apt install python3 python3-venv` on Debian 12), or choose a Jupyter of your own in "
                      f"Settings.", title="Cannot set up JupyterLab")


class ManagedEnv:
    """The environment at `path`; `ensure()` makes it when its stamp does not match."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_path()

    def __repr__(self) -> str:
        return f"ManagedEnv({str(self.path)!r})"

    def bin(self, name: str) -> Path:
        if os.name == "nt":
            return self.path / "Scripts" / (name if name.endswith(".exe") else name + ".exe")
        return self.path / "bin" / name

    @property
    def python(self) -> Path:
        return self.bin("python")

    @property
    def stamp_file(self) -> Path:
        return self.path / STAMP_FILE

    @property
    def log_path(self) -> Path:
        return self.path.parent / f"{self.path.name}-setup.log"

    def ready(self) -> bool:
        """Made by this version of the pins, and its Python still runs the extension's imports."""
        try:
            if self.stamp_file.read_text().strip() != stamp():
                return False
        except OSError:
            return False
        try:
            check = subprocess.run([str(self.python), "-c", "import jupyterlab, jupyterlab_pachyderm, ipykernel"],
                                   capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return False
        return check.returncode == 0

    def ensure(self, progress: Progress | None = None, cancel: threading.Event | None = None) -> "ManagedEnv":
        """Make the environment unless it is ready; raises SetupCancelled, IndexUnreachable, SetupFailed."""
        report = progress or (lambda _message, _fraction: None)
        cancel = cancel or threading.Event()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(self.path.parent / f"{self.path.name}.lock", cancel, report):
            if self.ready():
                report("Pachtray's JupyterLab is set up", 1.0)
                return self
            base = find_python()
            report(f"Setting up Pachtray's JupyterLab in {self.path} (the first time takes a few minutes)", 0.0)
            try:
                with open(self.log_path, "w", encoding="utf-8") as log:
                    self._make(base, report, cancel, log)
            except BaseException:
                self.remove()
                raise
            report("Pachtray's JupyterLab is set up", 1.0)
            return self

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    # ------------------------------------------------------------- making it

    def _make(self, base: str, report: Progress, cancel: threading.Event, log) -> None:
        self.remove()
        report(f"Creating a Python environment with {base}", 0.01)
        code, lines = _run([base, "-m", "venv", str(self.path)], cancel, log)
        if code != 0:
            raise SetupFailed(_venv_problem(base, lines), title="Cannot set up JupyterLab")
        constraints = self.path / "pachtray-constraints.txt"
        constraints.write_text(CONSTRAINTS, encoding="utf-8")
        report("Downloading JupyterLab and the Pachyderm extension", 0.03)
        pip_log = self.log_path.with_name(f"{self.path.name}-pip.log")  # pip's own, at debug level
        pip_log.unlink(missing_ok=True)
        install = [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                   "--progress-bar", "off", "--log", str(pip_log), "-c", str(constraints), *REQUIREMENTS]
        code, lines = _run(install, cancel, log, on_line=_PipProgress(report))
        if code != 0:
            raise _pip_problem(code, lines, pip_log)
        report("Checking the extension loads", 0.97)
        code, lines = _run([str(self.python), "-c", "import jupyterlab, jupyterlab_pachyderm.handlers, pycurl, "
                            "ipykernel; assert jupyterlab.__version__.startswith('3.'), jupyterlab.__version__"],
                           cancel, log)
        if code != 0:
            raise SetupFailed("JupyterLab was installed but does not load the Pachyderm extension:\n"
                              + "\n".join(lines[-8:]) + f"\n\nThe full output is in {self.log_path}.",
                              title="Cannot set up JupyterLab")
        self.stamp_file.write_text(stamp() + "\n", encoding="utf-8")


class _PipProgress:
    """Turns pip's output into progress: resolving is counted against the number of pins."""

    def __init__(self, report: Progress):
        self.report = report
        self.total = max(1, sum(1 for line in CONSTRAINTS.splitlines() if "==" in line))
        self.collected = 0

    def __call__(self, line: str) -> None:
        text = line.strip()
        if text.startswith(("Collecting ", "Processing ")):  # from the index, or from a local file
            self.collected += 1
            fraction = 0.03 + 0.72 * min(1.0, self.collected / self.total)
            self.report(f"Getting {os.path.basename(text.split(' ')[1])} "
                        f"({self.collected} of about {self.total} packages)", fraction)
        elif text.startswith("Installing collected packages"):
            self.report(f"Installing {self.collected} packages", 0.8)
        elif text.startswith("Successfully installed"):
            self.report("Installed", 0.95)


def _venv_problem(base: str, lines: list[str]) -> str:
    said = "\n".join(lines[-6:])
    if "ensurepip" in said or "No module named venv" in said:
        return (f"{base} cannot make virtual environments: its venv module is missing.\n\nInstall it (Debian and "
                f"Ubuntu: `sudo apt install python3-venv`), then try again.")
    return f"{base} -m venv failed:\n{said}"


def _pip_problem(code: int, lines: list[str], log_path: Path) -> PachtrayError:
    """What went wrong, from pip's output and its debug log (where failed index requests are)."""
    try:
        debug = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        debug = []
    said = [line for line in lines + debug if _UNREACHABLE.search(line)]
    if said:
        return IndexUnreachable(
            "Pachtray could not reach the Python package index to download JupyterLab "
            f"({_reason(said[-1])}).\n\nCheck your internet connection or proxy, and pip's index "
            f"settings (PIP_INDEX_URL, pip.conf), then try again. Details: {log_path}",
            title="Cannot download JupyterLab")
    tail = "\n".join(lines[-10:])
    if "pycurl" in tail and ("curl-config" in tail or "Failed to build" in tail or "Failed building" in tail):
        return SetupFailed("pip had to build pycurl (needed by jupyterlab-pachyderm) and could not: install the "
                           "libcurl and OpenSSL headers (Debian and Ubuntu: `sudo apt install libcurl4-openssl-dev "
                           f"libssl-dev`), then try again.\n\n{tail}", title="Cannot set up JupyterLab")
    return SetupFailed(f"pip could not install JupyterLab (exit status {code}):\n{tail}\n\nThe full output is in "
                       f"{log_path}.", title="Cannot set up JupyterLab")


def _reason(line: str) -> str:
    """The gist of one of pip's connection failures: which URL, and the socket error."""
    url = re.search(r"Could not fetch URL (\S+?):? ", line)
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", line)
    why = errno.group(0) if errno else _UNREACHABLE.search(line).group(0)
    return f"{url.group(1)}: {why}" if url else f"pip said: {why}"


def _run(cmd: list[str], cancel: threading.Event, log, on_line: Callable[[str], None] | None = None
         ) -> tuple[int, list[str]]:
    """Run `cmd`, logging and handing on its output line by line; cancel (or Ctrl-C) kills it."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, name="setup-output", daemon=True).start()
    seen: list[str] = []
    try:
        while True:
            if cancel.is_set():
                raise SetupCancelled()
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            log.write(line)
            seen.append(line.rstrip("\n"))
            if on_line is not None:
                on_line(line)
        return proc.wait(), seen
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        log.flush()


def _kill_group(proc: subprocess.Popen) -> None:
    """pip may run builds in children: end the whole session it leads."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        if os.name == "nt":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.SubprocessError):
        proc.wait(30)


@contextlib.contextmanager
def exclusive(lock_path: Path, cancel: threading.Event, report: Progress, what: str = "set-up"):
    """One at a time across processes (the tray and `pachtray jupyter` may both open JupyterLab)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; the stamp still guards reuse
        yield
        return
    with open(lock_path, "a+") as lock:
        told = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    report(f"Waiting for another {what} of Pachtray's JupyterLab to finish", None)
                    told = True
                if cancel.is_set():
                    raise SetupCancelled() from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
