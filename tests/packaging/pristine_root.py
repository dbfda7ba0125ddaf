"""A pristine Debian 12 root to install the .deb into as a user would (tests/packaging/test_deb_pristine.py).

`debootstrap --variant=minbase bookworm`, fetched from the Debian sources this machine's apt
already uses (read from /etc/apt, so no host name is written here), with /proc, /sys and /dev
bound in while commands run in it and always unbound after. Making one takes a minute or more,
so a tarball of it is kept between runs under a cache dir outside the clone
($PACHTRAY_CI_CACHE, default /var/cache/pachtray-ci), keyed by the sources, the apt options
that reach them and this recipe, and made again after `MAX_AGE_DAYS`; the downloaded .debs are
kept there too (`archives/`, bound into each root). Every run unpacks a fresh copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"  # Debian 12
SUITES = (SUITE, f"{SUITE}-updates", f"{SUITE}-security")
VARIANT = "minbase"
RECIPE = 1  # bump when the way the root is made changes: older tarballs are then made again
MAX_AGE_DAYS = 30
CACHE_DIR = Path(os.environ.get("PACHTRAY_CI_CACHE", "/var/cache/pachtray-ci"))
BINDS = ("proc", "sys", "dev", "dev/pts", "dev/shm")
# apt options that decide how the sources are reached; the root gets the host's values.
ACQUIRE_OPTIONS = ("Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::Check-Valid-Until",
                   "Acquire::Check-Date", "Acquire::Retries")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ------------------------------------------------------------------ apt sources


@dataclass(frozen=True)
class Source:
    """One apt source entry (both file formats end up here)."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str) -> str:
        return next((v for k, v in self.options if k == name), "")


# One-line option names whose deb822 names differ (options are kept under their deb822 names, lowercase).
ONE_LINE_OPTIONS = {"arch": "architectures", "lang": "languages", "target": "targets"}


def parse_one_line(text: str) -> list[Source]:
    """`deb [opt=val ...] URI SUITE [COMPONENT...]` lines (sources.list, *.list)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        options: list[tuple[str, str]] = []
        m = re.match(r"^(\S+)\s+\[([^\]]*)\]\s+(.*)$", line)
        if m:
            kind, opts, rest = m.groups()
            for opt in opts.split():
                key, _, value = opt.partition("=")
                options.append((ONE_LINE_OPTIONS.get(key.lower(), key.lower()), value.replace(",", " ")))
        else:
            kind, _, rest = line.partition(" ")
        fields = rest.split()
        if len(fields) < 2:
            continue
        out.append(Source((kind,), (fields[0],), (fields[1],), tuple(fields[2:]), tuple(options)))
    return out


def parse_deb822(text: str) -> list[Source]:
    """Stanzas of `Types:`, `URIs:`, `Suites:`, `Components:` and options (*.sources)."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:  # a continuation line (e.g. an inline Signed-By key)
                fields[key] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                key = None
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if not fields.get("types") or fields.get("enabled", "yes").lower() == "no":
            continue
        known = ("types", "uris", "suites", "components")
        options = tuple((k, v) for k, v in fields.items() if k not in known)
        out.append(Source(*(tuple(fields.get(k, "").split()) for k in known), options))
    return out


def read_sources(etc: Path = Path("/etc/apt")) -> list[Source]:
    """What apt reads: sources.list, sources.list.d/*.list and sources.list.d/*.sources."""
    sources = []
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        if path.name == "sources.list" or path.suffix == ".list":
            sources += parse_one_line(path.read_text())
        elif path.suffix == ".sources":
            sources += parse_deb822(path.read_text())
    return sources


def debian_sources(sources: list[Source]) -> list[Source]:
    """The binary-package entries for Debian 12's suites (main, updates, security), nothing else."""
    out = []
    for s in sources:
        suites = tuple(x for x in s.suites if x in SUITES)
        if "deb" in s.types and suites and "main" in s.components:
            out.append(Source(("deb",), s.uris, suites, s.components, s.options))
    return out


def release_source(sources: list[Source]) -> Source:
    """Where debootstrap fetches the base system: the first source carrying the release itself."""
    return next(s for s in sources if SUITE in s.suites)


def render_sources(sources: list[Source]) -> str:
    """The root's /etc/apt/sources.list.d/debian.sources (deb822)."""
    stanzas = []
    for s in sources:
        lines = [f"Types: {' '.join(s.types)}", f"URIs: {' '.join(s.uris)}", f"Suites: {' '.join(s.suites)}",
                 f"Components: {' '.join(s.components)}"]
        for key, value in s.options:
            lines.append(f"{key.title()}: " + value.replace("\n", "\n "))
        stanzas.append("\n".join(lines) + "\n")
    return "\n".join(stanzas)


def acquire_config() -> str:
    """The host's values of `ACQUIRE_OPTIONS` as an apt.conf snippet."""
    dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=True).stdout
    lines = [line for line in dump.splitlines() if line.split(" ", 1)[0] in ACQUIRE_OPTIONS]
    return "".join(line + "\n" for line in sorted(lines))


# ------------------------------------------------------------------ mounts


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    root = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
            if point == root or point.startswith(root + "/"):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)


def unmount_all(path: Path) -> None:
    """Detach everything mounted at or below `path` (lazily: a busy mount must not keep host /dev in it)."""
    for point in mounts_under(path):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_under(path)
    if left:
        raise RuntimeError(f"could not unmount {left}")


def remove_root(path: Path) -> None:
    """Delete a root once nothing is mounted in it (never while /dev or /proc of the host is bound there)."""
    unmount_all(path)
    shutil.rmtree(path, ignore_errors=True)


class Chroot:
    """Commands in a root with /proc, /sys and /dev bound in (from `__enter__` until `__exit__`, always).

    /dev/fuse gets the mode udev gives it on a desktop Debian (0666: any user may open it, and
    fusermount3 does the mounting) through a node of our own bound over it, since this machine's
    /dev/fuse may be root's only; the host's node is not touched.
    """

    def __init__(self, path: Path, archives: Path | None = None):
        self.path = Path(path)
        self.archives = archives
        self.fuse_node = self.path.with_name(f".{self.path.name}-dev-fuse")

    def __enter__(self) -> "Chroot":
        try:
            for name in BINDS:
                self._bind(Path("/") / name, self.path / name)
            if os.path.exists("/dev/fuse"):
                self.fuse_node.unlink(missing_ok=True)
                os.mknod(self.fuse_node, 0o600 | stat.S_IFCHR, os.stat("/dev/fuse").st_rdev)
                os.chmod(self.fuse_node, 0o666)
                self._bind(self.fuse_node, self.path / "dev/fuse")
            if self.archives:
                self._bind(self.archives, self.path / "var/cache/apt/archives")
            shutil.copy2("/etc/resolv.conf", self.path / "etc/resolv.conf")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        unmount_all(self.path)
        self.fuse_node.unlink(missing_ok=True)

    def _bind(self, source: Path, target: Path) -> None:
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(source), str(target)], check=True, capture_output=True)
        subprocess.run(["mount", "--make-private", str(target)], check=True, capture_output=True)

    def command(self, argv: list[str], user: int | None = None, env: dict | None = None) -> list[str]:
        """`chroot ROOT [setpriv --reuid U ...] env -i VARS... argv`: a clean environment, as a login would give."""
        cmd = ["chroot", str(self.path)]
        if user is not None:
            cmd += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        variables = {"PATH": PATH, "LANG": "C.UTF-8", **(env or {})}
        return cmd + ["env", "-i", *(f"{k}={v}" for k, v in variables.items()), *argv]

    def run(self, argv: list[str], user: int | None = None, env: dict | None = None, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.command(argv, user, env), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} in {self.path} exited {proc.returncode}:\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def popen(self, argv: list[str], log: Path, user: int | None = None, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv, user, env), stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

    def installed(self) -> dict[str, str]:
        """Installed package -> its Provides (names only)."""
        out = self.run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\t${Provides}\n"]).stdout
        pkgs = {}
        for line in out.splitlines():
            name, status, provides = (line.split("\t") + ["", ""])[:3]
            if status.strip() == "ii":
                pkgs[name] = provides
        return pkgs


# ------------------------------------------------------------------ the cached root


@dataclass
class CachedRoot:
    tarball: Path
    archives: Path
    made: bool  # True when this run made it (a cold run)
    seconds: float


def cached_root() -> CachedRoot:
    """The tarball of a pristine root for this machine's sources: reused when present and fresh, else made."""
    sources = debian_sources(read_sources())
    if not any(SUITE in s.suites for s in sources):
        raise LookupError(f"this machine's apt sources have no Debian {SUITE} entry (/etc/apt/sources.list*)")
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    text, conf = render_sources(sources), acquire_config()
    key = hashlib.sha256(json.dumps([RECIPE, SUITE, VARIANT, arch, text, conf]).encode()).hexdigest()[:16]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    archives = CACHE_DIR / "archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"debian-{SUITE}-{VARIANT}-{arch}-{key}.tar.zst"
    started = time.monotonic()
    with open(CACHE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time; the others wait and reuse its tarball
        if tarball.exists() and time.time() - tarball.stat().st_mtime < MAX_AGE_DAYS * 86400:
            return CachedRoot(tarball, archives, False, time.monotonic() - started)
        _make(tarball, sources, text, conf, archives)
        for old in CACHE_DIR.glob(f"debian-{SUITE}-{VARIANT}-{arch}-*.tar.zst"):
            if old != tarball:
                old.unlink()
    return CachedRoot(tarball, archives, True, time.monotonic() - started)


def _make(tarball: Path, sources: list[Source], text: str, conf: str, archives: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="root-", dir=CACHE_DIR))
    root = work / "root"
    try:
        env = dict(os.environ)
        for option, var in (("Acquire::http::Proxy", "http_proxy"), ("Acquire::https::Proxy", "https_proxy")):
            m = re.search(rf'^{option} "([^"]+)";', conf, re.M)
            if m:
                env[var] = m[1]
        base = release_source(sources)
        keyring = base.option("signed-by") or "/usr/share/keyrings/debian-archive-keyring.gpg"
        proc = subprocess.run(["debootstrap", f"--variant={VARIANT}", f"--keyring={keyring}",
                               f"--cache-dir={archives}", SUITE, str(root), base.uris[0]],
                              capture_output=True, text=True, timeout=1800, env=env)
        unmount_all(work)  # debootstrap mounts /proc and /sys itself and may leave them on failure
        if proc.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        # What booting adds to a Debian system (systemd-tmpfiles, debian.conf): fusermount3 needs it to
        # let a user unmount.
        (root / "etc/mtab").symlink_to("../proc/self/mounts")
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(text)
        (root / "etc/apt/apt.conf.d/99host-acquire").write_text(conf)
        for s in sources:  # a keyring the entries name that the root lacks comes from the host
            keyfile = s.option("signed-by")
            if keyfile.startswith("/") and not (root / keyfile.lstrip("/")).exists():
                (root / keyfile.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(keyfile, root / keyfile.lstrip("/"))
        with Chroot(root, archives) as chroot:
            chroot.run(["apt-get", "update", "-q"])
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "--zstd", "--numeric-owner", "--xattrs", "-cf", str(partial), "-C", str(root), "."],
                       check=True, capture_output=True)
        partial.rename(tarball)
    finally:
        remove_root(work)


@contextlib.contextmanager
def pristine_root(tmp: Path):
    """A fresh copy of the cached root in `tmp`, entered (binds on) with today's package lists, removed
    after; yields (Chroot, CachedRoot). The shared .deb cache loses what the archive no longer has."""
    cached = cached_root()
    root = tmp / "root"
    root.mkdir()
    try:
        subprocess.run(["tar", "--zstd", "--numeric-owner", "--xattrs", "-xpf", str(cached.tarball), "-C", str(root)],
                       check=True, capture_output=True)
        with Chroot(root, cached.archives) as chroot:
            chroot.run(["apt-get", "update", "-q"])
            chroot.run(["apt-get", "autoclean", "-q"])
            yield chroot, cached
    finally:
        remove_root(root)


# ------------------------------------------------------------------ the Depends closure


def parse_relations(field: str) -> list[list[str]]:
    """`a (>= 1) | b, c:any` -> [["a", "b"], ["c"]] (versions and architecture qualifiers dropped)."""
    clauses = []
    for clause in filter(None, (c.strip() for c in field.replace("\n", " ").split(","))):
        clauses.append([re.split(r"[\s(:\[]", alt.strip(), maxsplit=1)[0] for alt in clause.split("|")])
    return clauses


def parse_available(text: str) -> dict[str, dict[str, str]]:
    """`apt-cache dumpavail` (each package's candidate) -> name -> its Depends, Pre-Depends, Provides."""
    pkgs = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            pkgs[fields["Package"]] = {k: fields.get(k, "") for k in ("Depends", "Pre-Depends", "Provides")}
    return pkgs


def depends_closure(depends: str, available: dict[str, dict[str, str]], installed: dict[str, str]) -> set[str]:
    """The packages apt must add to satisfy `depends` (and their own Depends and Pre-Depends, recursively)
    on a system with `installed`: like apt, a clause an installed or chosen package already satisfies adds
    nothing, and an open choice `a | b` takes the first alternative that exists, after every clause without
    a choice is settled (so a `b` needed anyway is not doubled by `a`). Versions are not compared."""
    providers: dict[str, list[str]] = {}
    for name, fields in sorted(available.items()):
        for provided in parse_relations(fields["Provides"]):
            providers.setdefault(provided[0], []).append(name)
    have = set(installed)
    for provides in installed.values():
        have.update(alt[0] for alt in parse_relations(provides))
    added: set[str] = set()
    pending = parse_relations(depends)

    def add(name: str) -> None:
        added.add(name)
        have.add(name)
        fields = available[name]
        have.update(alt[0] for alt in parse_relations(fields["Provides"]))
        pending.extend(parse_relations(fields["Pre-Depends"]) + parse_relations(fields["Depends"]))

    while pending:
        pending.sort(key=len)  # clauses without a choice first
        clause = pending.pop(0)
        if any(alt in have for alt in clause):
            continue
        choice = next((alt if alt in available else providers[alt][0] for alt in clause
                       if alt in available or alt in providers), None)
        if choice is None:
            raise LookupError(f"nothing available satisfies {' | '.join(clause)}")
        add(choice)
    return added
