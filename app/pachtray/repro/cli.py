"""`pachtray lock` and `pachtray reproduce`: thin clients of the daemon's /pachtray/v1 routes.

Both talk to the daemon of the current settings (TCP on its API port), or to `--port P` /
`--sock-path S`; exit 0 on success, 1 with a one-line reason on stderr otherwise (2: usage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import urlencode

from pachtray import config, localhttp
from pachtray.repro import lockfile

PREFIX = "/pachtray/v1"
TIMEOUT = 600.0  # a lock of many files inspects each one


class Failed(Exception):
    """A one-line reason to print and exit 1 with."""


def _add_daemon_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, help="the daemon's API port (default: the one in Pachtray's settings)")
    p.add_argument("--sock-path", help="talk to the daemon over this unix socket instead of TCP")


def _call(args, method: str, route: str, body=None) -> dict:
    if args.sock_path:
        url, sock = f"http://localhost{PREFIX}{route}", args.sock_path
    else:
        port = args.port
        if port is None:
            try:
                port = config.Settings.load().api_port
            except ValueError as e:
                raise Failed(f"{e}; pass --port or --sock-path") from None
        url, sock = f"http://127.0.0.1:{port}{PREFIX}{route}", ""
    try:
        status, data = localhttp.request(method, url, sock_path=sock, body=body, timeout=TIMEOUT)
    except localhttp.Unreachable as e:
        raise Failed(f"no Pachtray daemon answers: {e}; start Pachtray, or pass --port/--sock-path") from None
    text = data.decode("utf-8", "replace").strip()
    if status >= 400:
        raise Failed(text.splitlines()[0] if text else f"HTTP {status}")
    try:
        return json.loads(text)
    except ValueError:
        raise Failed(f"the daemon answered something that is not JSON (HTTP {status})") from None


def _run(prog: str, main, argv: list[str]) -> int:
    try:
        main(argv)
    except Failed as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ pachtray lock

def lock_main(argv: list[str]) -> int:
    return _run("pachtray lock", _lock, argv)


def _lock(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pachtray lock", description=(
        "Pin the data a notebook's kernel (or any process) read from the mounts: writes a lock file with the "
        "exact commits and the files' sizes and hashes. `pachtray reproduce` mounts them again."))
    p.add_argument("notebook", nargs="?", help="the notebook (.ipynb) whose running kernel read the data")
    p.add_argument("--pid", type=int, help="lock what this process (and its subprocesses) read instead")
    p.add_argument("-o", "--output", help="where to write the lock ('-' for stdout; default: NOTEBOOK.pachyderm.lock "
                                          "beside the notebook, or ./pachyderm.lock with --pid)")
    _add_daemon_args(p)
    args = p.parse_args(argv)
    if (args.notebook is None) == (args.pid is None):
        p.error("give a NOTEBOOK or --pid PID (one of them)")
    if args.pid is not None:
        query = {"pid": args.pid}
    else:
        notebook = os.path.abspath(args.notebook)
        if not os.path.isfile(notebook):
            raise Failed(f"no such notebook: {notebook}")
        query = {"notebook": notebook}
    answer = _call(args, "GET", "/lock?" + urlencode(query))
    for warning in answer.get("warnings", []):
        print(f"pachtray lock: warning: {warning}", file=sys.stderr)
    lock = answer["lock"]
    if args.output == "-":
        sys.stdout.write(lockfile.dumps(lock))
        return
    target = args.output or lockfile.default_path(None if args.pid is not None else args.notebook)
    try:
        written = lockfile.write(target, lock)
    except OSError as e:
        raise Failed(f"cannot write {target}: {e.strerror or e}") from None
    files = sum(len(m["files"]) for m in lock["mounts"])
    kernel = answer.get("kernel")
    who = f"kernel pid {kernel['pid']}" if kernel else f"pid {answer['pid']}"
    print(f"wrote {written}: {len(lock['mounts'])} commit(s), {files} file(s) read by {who}")
    for m in lock["mounts"]:
        print(f"  {m['name']}: {m['project']}/{m['repo']}@{m['branch'] or '-'}={m['commit']} "
              f"({len(m['files'])} file(s))")


# ------------------------------------------------------------------ pachtray reproduce

def reproduce_main(argv: list[str]) -> int:
    return _run("pachtray reproduce", _reproduce, argv)


def _rename(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {text!r}")
    return old, new


def _reproduce(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pachtray reproduce", description=(
        "Mount the commits of a lock file read-only under the same mount names, after checking that the "
        "pinned files still have their sizes and hashes."))
    p.add_argument("lock", help="the lock file (NOTEBOOK.pachyderm.lock)")
    p.add_argument("--rename", type=_rename, action="append", default=[], metavar="OLD=NEW",
                   help="mount the lock's mount OLD as NEW (when OLD is taken); may be repeated")
    _add_daemon_args(p)
    args = p.parse_args(argv)
    try:
        lock = lockfile.read(args.lock)
    except OSError as e:
        raise Failed(f"cannot read {args.lock}: {e.strerror or e}") from None
    except lockfile.LockFormatError as e:
        raise Failed(f"{args.lock} is not a Pachtray lock: {e}") from None
    answer = _call(args, "PUT", "/_reproduce", {"lock": lock, "rename": dict(args.rename)})
    for warning in answer.get("warnings", []):
        print(f"pachtray reproduce: warning: {warning}", file=sys.stderr)
    for m in answer["mounts"]:
        print(describe_mount(m))
    print(f"verified {answer['verified_files']} pinned file(s)")


def describe_mount(m: dict) -> str:
    """One line per reproduced mount (the CLI prints it; the GUI shows the same words)."""
    how = "already mounted" if m.get("reused") else "mounted"
    renamed = f" (was {m['locked_name']})" if m["locked_name"] != m["name"] else ""
    behind = m.get("how_many_commits_behind") or 0
    if not m.get("branch"):
        where = "its branch is gone"
    elif behind:
        where = f"{behind} commit{'s' if behind != 1 else ''} behind {m['branch']}"
    else:
        where = f"the head of {m['branch']}"
    return (f"{how} {m['name']}{renamed}: {m['project']}/{m['repo']}@{m['commit']} ({where}) "
            f"at {m.get('mountpoint') or '?'}")
