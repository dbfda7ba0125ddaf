"""The PyInstaller bundle's side of Pachtray: resources, entry point, self-test, FUSE check.

One frozen binary serves every command: installed as `pachtray` it is the app (and its
subcommands, e.g. the daemon re-running `sys.executable daemon`); reached through a link named
`mount-server` it is the drop-in daemon jupyterlab-pachyderm spawns from PATH.
"""

from __future__ import annotations

import ctypes.util
import json
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


def resource_dirs() -> list[Path]:
    """Where the icons may be, in order: inside the package (`pachtray/resources`: an installed wheel,
    where setup.py maps them from resources/, and the bundle, where build.spec puts them), then the
    checkout's top-level resources/, their one source."""
    package = Path(__file__).resolve().parent
    return [package / "resources", package.parent.parent / "resources"]


def resources_dir() -> Path:
    """The first of `resource_dirs()` that holds the icons; FileNotFoundError names them all."""
    for folder in resource_dirs():
        if (folder / "pachtray.svg").is_file():
            return folder
    raise FileNotFoundError("Pachtray's icons are missing; looked in: " + ", ".join(map(str, resource_dirs())))


def resource_path(*parts: str) -> Path:
    """A file among the icons (`resources/`), wherever Pachtray is installed."""
    return resources_dir().joinpath(*parts)


def pachtray_command(*args: str) -> list[str]:
    """The command that runs Pachtray again with ``args`` (a subcommand and its flags): the bundle's
    binary itself when frozen, else this Python with `-m pachtray`. The one way to relaunch it."""
    return [sys.executable, *args] if FROZEN else [sys.executable, "-m", "pachtray", *args]


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
    if argv[1:] == ["--self-test"]:
        report = self_test()
        print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 1
    return cli.main(argv[1:])


def self_test() -> dict:
    """Check, from inside a bundle, what it needs at run time and static analysis cannot prove:
    Qt's platform and image plugins, the icons, the CA bundle, lazily imported SDK and keyring
    modules, and FUSE (`pachtray --self-test`; QT_QPA_PLATFORM picks the platform to try)."""
    import importlib

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication, QIcon, QImageReader

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    formats = sorted(bytes(f.data()).decode() for f in QImageReader.supportedImageFormats())
    try:
        resources = resources_dir()
    except FileNotFoundError as e:
        resources, icons = str(e), []
    else:
        icons = sorted(p.name for p in resources.glob("*.svg"))
    icons_render = bool(icons) and all(not QIcon(str(resources / name)).pixmap(64, 64).isNull() for name in icons)
    modules = ["pachyderm_sdk.api.pfs", "pachyderm_sdk.api.pps", "pachyderm_sdk.api.auth", "pachyderm_sdk.api.admin",
               "pachyderm_sdk.api.version", "grpc_health.v1.health_pb2_grpc", "keyring.backends.SecretService",
               "keyring.backends.kwallet", "keyring.backends.chainer", "pachtray.daemon", "pachtray.gui.app",
               "pachtray.local.server", "betterproto_rust_codec"]
    missing_modules = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            missing_modules.append(f"{name}: {e}")
    import certifi

    report = {
        "frozen": FROZEN,
        "qt_platform": app.platformName(),
        "image_formats": formats,
        "resources": str(resources),
        "icons": icons,
        "icons_render": icons_render,
        "ca_bundle": os.path.isfile(certifi.where()),
        "missing_modules": missing_modules,
        "fuse": check_fuse_prerequisite() or "ok",
    }
    report["ok"] = bool(icons_render and {"png", "svg"} <= set(formats) and report["ca_bundle"]
                        and not missing_modules)
    return report


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


def allow_other_permitted(fuse_conf: str = "/etc/fuse.conf") -> bool:
    """Whether this process may mount with `allow_other` (the reference mount-server's default).

    Root may; on Linux anyone else only when /etc/fuse.conf has a `user_allow_other` line, which a
    stock Debian lacks, and fusermount3 then refuses the whole mount, not just the option.
    """
    if not sys.platform.startswith("linux") or os.geteuid() == 0:
        return True
    try:
        with open(fuse_conf) as f:
            return any(line.strip() == "user_allow_other" for line in f)
    except OSError:
        return False


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
