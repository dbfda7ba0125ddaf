"""The PyInstaller bundle's side of Pachtray: resources, self-invocation, entry point, FUSE check.

One frozen binary serves every command: installed as `pachtray` it is the app (and its
subcommands, e.g. the daemon re-running `sys.executable daemon`); reached through a link named
`mount-server` it is the drop-in daemon jupyterlab-pachyderm spawns from PATH.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import sys
from pathlib import Path

FROZEN = bool(getattr(sys, "frozen", False))

FUSE_HELP = {
    "linux": "Install FUSE 3: `sudo apt-get install fuse3` (Debian/Ubuntu) or `sudo dnf install fuse3` (Fedora).",
    "darwin": "Install macFUSE (https://osxfuse.github.io, allow its system extension in System Settings ▸ "
              "Privacy & Security, then restart) or FUSE-T (https://www.fuse-t.org, no kernel extension).",
    "win32": "Install WinFsp (https://winfsp.dev/rel/), then start Pachtray again.",
}


def bundle_dir() -> Path:
    """Where bundled data lives: the unpacked bundle when frozen, else the source checkout."""
    if FROZEN:
        return Path(sys._MEIPASS)  # type: ignore[attr-defined]  # set by PyInstaller's bootloader
    return Path(__file__).resolve().parent.parent.parent


def resource_path(*parts: str) -> Path:
    """A file under `resources/` (icons), in the bundle or the checkout."""
    return bundle_dir().joinpath("resources", *parts)


def self_command(*args: str) -> list[str]:
    """The command line that runs `pachtray ARGS...` with this same installation."""
    base = [sys.executable] if FROZEN else [sys.executable, "-m", "pachtray"]
    return [*base, *args]


def invoked_as(argv0: str) -> str:
    """The program name the user ran, without directory or Windows suffix (`mount-server`, `pachtray`)."""
    name = os.path.basename(argv0)
    return name[:-4] if name.lower().endswith(".exe") else name


def main(argv: list[str] | None = None) -> int:
    """Entry point of the bundle: dispatch on the name it was started under, then on the subcommand."""
    from pachtray import cli

    argv = list(sys.argv if argv is None else argv)
    if invoked_as(argv[0]) == "mount-server":
        return cli.mount_server_main(argv[1:])
    return cli.main(argv[1:])


def check_fuse_prerequisite(platform: str = sys.platform) -> str | None:
    """None when this machine can make FUSE mounts, else a message saying what to install.

    Checked at start (the GUI shows it in a dialog) because without FUSE the app can browse
    but never mount, and the failure deep inside a mount would not say what to do.
    """
    if platform.startswith("linux"):
        missing = []
        if not os.path.exists("/dev/fuse"):
            missing.append("the /dev/fuse device (load the `fuse` kernel module: `sudo modprobe fuse`)")
        if not (shutil.which("fusermount3") or shutil.which("fusermount")):
            missing.append("the fusermount3 helper")
        if not (os.environ.get("FUSE_LIBRARY_PATH") or ctypes.util.find_library("fuse3")
                or ctypes.util.find_library("fuse")):
            missing.append("the libfuse3 library")
        if not missing:
            return None
        return f"Pachtray needs FUSE to mount Pachyderm repos, but {', '.join(missing)} is missing.\n\n{FUSE_HELP['linux']}"
    if platform == "darwin":
        candidates = ["/Library/Filesystems/macfuse.fs", "/usr/local/lib/libfuse.2.dylib",
                      "/usr/local/lib/libfuse-t.dylib", "/Library/Application Support/fuse-t"]
        if any(os.path.exists(p) for p in candidates) or ctypes.util.find_library("fuse"):
            return None
        return f"Pachtray needs macFUSE or FUSE-T to mount Pachyderm repos, and neither is installed.\n\n{FUSE_HELP['darwin']}"
    if platform == "win32":
        if _winfsp_installed():
            return None
        return f"Pachtray needs WinFsp to mount Pachyderm repos, and it is not installed.\n\n{FUSE_HELP['win32']}"
    return f"Pachtray cannot mount on this platform ({platform}): no supported FUSE implementation."


def _winfsp_installed() -> bool:
    try:
        import winreg
    except ImportError:
        return False
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\WinFsp", 0,
                            winreg.KEY_READ | winreg.KEY_WOW64_32KEY) as key:
            install_dir = winreg.QueryValueEx(key, "InstallDir")[0]
    except OSError:
        return False
    arch = "x64" if sys.maxsize > 2**32 else "x86"
    return os.path.exists(os.path.join(install_dir, "bin", f"winfsp-{arch}.dll"))


if __name__ == "__main__":
    raise SystemExit(main())
