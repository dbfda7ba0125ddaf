"""Edge cases through read-only and read-write mounts: long, unicode and spaced names, empty files,
a sparse file over 4 GiB, a 100-level tree and 100,000 entries in one folder.

Each case goes both ways: written with the SDK and read through a ro mount, and written through a
rw mount, committed, then checked with the SDK and through a fresh ro mount of the new head.
"""

from __future__ import annotations

import os

import pytest
from pachyderm_sdk.api import pfs

from stress_helpers import commit, create_repo, mount, read_pfs
from stress_helpers import no_leftover_mounts  # noqa: F401 - autouse: unmount leftovers

pytestmark = pytest.mark.slow

GiB = 1 << 30
# Each entry costs milliseconds of protobuf and gRPC work in Python on both sides
# (docs/benchmarks.md): 10,000 keeps CI within its budget; PACHTRAY_STRESS_ENTRIES=100000 is the
# issue's figure (about 8 minutes on 2 cores).
WIDE_ENTRIES = int(os.environ.get("PACHTRAY_STRESS_ENTRIES", "10000"))
# Names PFS accepts (pachd allows printable ASCII only, without glob characters).
NAMES = {
    "/" + "n" * 255: b"a name of 255 bytes\n",
    "/dir with spaces/file with spaces.txt": b"spaces\n",
    "/dots.and-dashes_and ~tilde,comma;semicolon'quote/x=1&y=2 %20#hash$.txt": b"punctuation\n",
    "/empty.txt": b"",
    "/dir with spaces/empty too": b"",
}
# Names PFS refuses: unicode (also a 255-byte UTF-8 one) and glob characters, which desktop apps
# produce all the time ("report (1).txt"). A rw mount must not lose or wedge anything over them.
REFUSED = ["/ünïcødé/文件 🐘 ✓.txt", "/" + "é" * 127 + "x", "/report (1).txt", "/what?.txt", "/[draft].md"]


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def check_tree(root: str, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        full = root + path
        assert os.path.basename(path) in os.listdir(os.path.dirname(full)), f"{path!r} not listed"
        assert os.path.getsize(full) == len(data), f"size of {path!r}"
        assert read(full) == data, f"content of {path!r}"


def write_tree(root: str, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        os.makedirs(os.path.dirname(root + path), exist_ok=True)
        with open(root + path, "wb") as f:
            f.write(data)


def test_names_and_empty_files_ro(daemon, client, unique_name):
    repo = create_repo(client, unique_name("names"), NAMES)
    check_tree(mount(daemon, "names", repo), NAMES)


def test_names_and_empty_files_rw(daemon, client, unique_name):
    repo = create_repo(client, unique_name("names-rw"))
    rw = mount(daemon, "names-rw", repo, mode="rw")
    write_tree(rw, NAMES)
    check_tree(rw, NAMES)
    commit(daemon, "names-rw")
    for path, data in NAMES.items():
        assert read_pfs(client, repo, path) == data, f"committed content of {path!r}"
    check_tree(mount(daemon, "names-rw-ro", repo), NAMES)
    check_tree(rw, NAMES)  # the rw mount now reads the same files from its new base


def test_names_pfs_refuses_do_not_wedge_a_rw_mount(daemon, client, unique_name):
    """Either the mount refuses the name at once, or the commit fails saying why and keeps every
    change; once the refused files are gone, the rest commits."""
    repo = create_repo(client, unique_name("refused"))
    rw = mount(daemon, "refused", repo, mode="rw")
    write_tree(rw, NAMES)
    refused_at_create = []
    for path in REFUSED:
        try:
            write_tree(rw, {path: b"refused by PFS\n"})
        except OSError:
            refused_at_create.append(path)
    created = [p for p in REFUSED if p not in refused_at_create]
    if created:
        r = daemon.put("/_commit", {"mount": "refused"}, timeout=600)
        assert r.status_code >= 400 and ("ASCII" in r.text or "not allowed" in r.text), r.text
        assert "Traceback" not in r.text
        check_tree(rw, NAMES)  # nothing lost
        for path in created:  # what a user does: delete the files (and folders) the commit named
            os.remove(rw + path)
            if os.path.dirname(path) != "/":
                os.rmdir(rw + os.path.dirname(path))
    commit(daemon, "refused")
    for path, data in NAMES.items():
        assert read_pfs(client, repo, path) == data, f"committed content of {path!r}"
    listed = {info.file.path for info in client.pfs.walk_file(file=pfs.File.from_uri(f"{repo}@master:/"))
              if info.file_type == pfs.FileType.FILE}
    assert listed == set(NAMES), listed


def test_sparse_file_over_4gib(daemon, client, unique_name):
    """rw: truncate to 5 GiB, write at the end, commit; read the tail (and across 4 GiB) through ro."""
    size = 5 * GiB
    tail = b"the last bytes of a 5 GiB file\n"
    repo = create_repo(client, unique_name("sparse"))
    rw = mount(daemon, "sparse-rw", repo, mode="rw")
    with open(rw + "/big.bin", "wb") as f:
        f.truncate(size)
        f.seek(size - len(tail))
        f.write(tail)
    assert os.path.getsize(rw + "/big.bin") == size
    commit(daemon, "sparse-rw")
    info = client.pfs.inspect_file(file=pfs.File.from_uri(f"{repo}@master:/big.bin"))
    assert info.size_bytes == size

    ro = mount(daemon, "sparse-ro", repo)
    assert os.path.getsize(ro + "/big.bin") == size
    with open(ro + "/big.bin", "rb") as f:
        f.seek(size - len(tail) - 16)
        assert f.read() == b"\0" * 16 + tail
        f.seek(4 * GiB - 8)
        assert f.read(16) == b"\0" * 16


def test_deep_tree(daemon, client, unique_name):
    deep = "/" + "/".join(f"level{i}" for i in range(100))
    sdk_files = {deep + "/from-sdk.txt": b"written with the SDK\n"}
    repo = create_repo(client, unique_name("deep"), sdk_files)
    check_tree(mount(daemon, "deep-ro", repo), sdk_files)

    rw = mount(daemon, "deep-rw", repo, mode="rw")
    check_tree(rw, sdk_files)
    rw_files = {deep + "/from-mount.txt": b"written through the rw mount\n",
                "/" + "/".join(f"other{i}" for i in range(100)) + "/leaf.txt": b"a second deep tree\n"}
    write_tree(rw, rw_files)
    commit(daemon, "deep-rw")
    for path, data in rw_files.items():
        assert read_pfs(client, repo, path) == data
    check_tree(mount(daemon, "deep-ro2", repo), {**sdk_files, **rw_files})


@pytest.mark.timeout(1800)
def test_many_entries_in_one_folder(daemon, client, unique_name):
    n = WIDE_ENTRIES
    repo = create_repo(client, unique_name("wide"), {f"/wide/f{i:06d}": b"%d\n" % i for i in range(n)})
    expected = {f"f{i:06d}" for i in range(n)}

    ro = mount(daemon, "wide-ro", repo)
    assert set(os.listdir(ro + "/wide")) == expected
    assert read(ro + f"/wide/f{n - 1:06d}") == b"%d\n" % (n - 1)

    rw = mount(daemon, "wide-rw", repo, mode="rw")
    assert set(os.listdir(rw + "/wide")) == expected
    with open(rw + "/wide/new-entry", "wb") as f:
        f.write(b"one more\n")
    os.remove(rw + "/wide/f000000")
    commit(daemon, "wide-rw")
    assert read_pfs(client, repo, "/wide/new-entry") == b"one more\n"
    assert read_pfs(client, repo, "/wide/f000001") == b"1\n"
    with pytest.raises(Exception, match="not found|NOT_FOUND"):
        read_pfs(client, repo, "/wide/f000000")
