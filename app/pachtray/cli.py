"""Command line: `pachtray` (GUI) and its subcommands; `mount-server` (the drop-in daemon).

Each subcommand's module parses its own arguments, so this file only dispatches and keeps
heavy imports (Qt, gRPC) out of the others' start-up.
"""

from __future__ import annotations

import os
import sys

from pachtray import __version__

SUBCOMMANDS = {
    "local-pachd": ("pachtray.local.server", "main", "run the embedded Pachyderm-compatible server"),
    "daemon": ("pachtray.daemon", "daemon_main", "run the daemon (FUSE, REST API, local server)"),
    "mount-server": ("pachtray.daemon", "mount_server_main", "drop-in for Pachyderm's mount-server"),
    "gui": ("pachtray.gui.app", "main", "run the tray application (the default)"),
}

USAGE = """usage: pachtray [--window] [--headless] [--version]
       pachtray <command> [options]

commands:
""" + "".join(f"  {name:<13} {desc}\n" for name, (_, _, desc) in SUBCOMMANDS.items())


def _run(module: str, func: str, argv: list[str]) -> int:
    # gRPC's fork support breaks FUSE threads and subprocess use; nothing here forks gRPC state.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    import importlib

    rc = getattr(importlib.import_module(module), func)(argv)
    return int(rc or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V"):
        print(f"pachtray {__version__}")
        return 0
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if argv and argv[0] in SUBCOMMANDS:
        module, func, _ = SUBCOMMANDS[argv[0]]
        return _run(module, func, argv[1:])
    if argv and not argv[0].startswith("-"):
        print(f"pachtray: unknown command {argv[0]!r}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    module, func, _ = SUBCOMMANDS["gui"]
    return _run(module, func, argv)


def mount_server_main(argv: list[str] | None = None) -> int:
    """Entry point of the `mount-server` console script (what jupyterlab-pachyderm spawns)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return _run("pachtray.daemon", "mount_server_main", argv)


if __name__ == "__main__":
    raise SystemExit(main())
