"""The daemon's upload jobs against the real embedded server: one commit with the description,
every path replaced (never appended to), and a cancel or a failure leaves the branch as it was."""

from __future__ import annotations

from pachyderm_sdk.api import pfs

from conftest import wait_for
from pachtray import uploads
from pachtray.pfs.client import connect


def _branch(client, name: str) -> pfs.Branch:
    repo = pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=repo)
    return pfs.Branch(repo=repo, name="master")


def _files(client, branch: pfs.Branch) -> dict[str, bytes]:
    head = pfs.Commit(branch=branch, repo=branch.repo)
    return {fi.file.path: b"".join(m.value for m in client.pfs.get_file(file=fi.file))
            for fi in client.pfs.walk_file(file=pfs.File(commit=head, path="/")) if fi.file_type == pfs.FileType.FILE}


def test_an_upload_is_one_commit_that_replaces_what_was_there(pachd, unique_name, tmp_path):
    client = connect(pachd.address)
    branch = _branch(client, unique_name("up"))
    with client.pfs.commit(branch=branch) as c:
        c.put_file_from_bytes(path="/in/a.txt", data=b"old content that is longer")
    (tmp_path / "a.txt").write_bytes(b"new")
    (tmp_path / "empty.txt").write_bytes(b"")
    files = uploads.plan([str(tmp_path / "a.txt"), str(tmp_path / "empty.txt")], "/in")
    assert files == [(str(tmp_path / "a.txt"), "/in/a.txt", 3), (str(tmp_path / "empty.txt"), "/in/empty.txt", 0)]
    recorded = []
    service = uploads.Uploads(record=lambda *args: recorded.append(args))
    job = service.start(client, branch, files, "two files")
    wait_for(lambda: recorded, 30, what="upload")
    done = service.get(job.job).snapshot()
    assert (done["state"], done["files_done"], done["bytes_done"]) == ("done", 2, 3)
    assert recorded == [("upload", "Upload finished", f"2 file(s) committed to {branch.repo.name}@master as "
                                                      f"{done['commit'][:12]}")]
    assert _files(client, branch) == {"/in/a.txt": b"new", "/in/empty.txt": b""}
    info = client.pfs.inspect_commit(commit=pfs.Commit(id=done["commit"], repo=branch.repo))
    assert info.description == "two files"


def test_a_cancelled_upload_leaves_the_branch_as_it_was(pachd, unique_name, tmp_path):
    client = connect(pachd.address)
    branch = _branch(client, unique_name("cancel"))
    with client.pfs.commit(branch=branch) as c:
        c.put_file_from_bytes(path="/keep.txt", data=b"keep")
    head = client.pfs.inspect_branch(branch=branch).head.id
    (tmp_path / "big.bin").write_bytes(b"x" * (3 * uploads.CHUNK))
    files = uploads.plan([str(tmp_path / "big.bin")], "/")
    job = uploads.UploadJob(job="j", project="default", repo=branch.repo.name, branch="master", files_total=1,
                            bytes_total=files[0][2])
    job.cancel.set()  # cancelled before the first chunk is sent: deterministic
    recorded = []
    uploads.Uploads(record=lambda *args: recorded.append(args))._work(client, branch, files, "never", job)
    assert (job.state, job.error, job.commit) == (uploads.CANCELLED, "upload cancelled", "")
    assert recorded == [("upload", "Upload cancelled", f"nothing was committed to {branch.repo.name}@master")]
    assert client.pfs.inspect_branch(branch=branch).head.id == head
    assert _files(client, branch) == {"/keep.txt": b"keep"}


def test_a_failed_upload_is_dropped_and_says_why(pachd, unique_name, tmp_path):
    client = connect(pachd.address)
    branch = _branch(client, unique_name("fail"))
    (tmp_path / "gone.txt").write_bytes(b"soon gone")
    files = uploads.plan([str(tmp_path / "gone.txt")], "/")
    (tmp_path / "gone.txt").unlink()  # vanishes between the plan and the upload
    recorded = []
    service = uploads.Uploads(record=lambda *args: recorded.append(args))
    job = service.start(client, branch, files, "x")
    wait_for(lambda: recorded, 30, what="upload")
    assert job.state == uploads.ERROR and job.error.startswith("upload failed: ") and "gone.txt" in job.error
    assert recorded == [("error", "Upload failed", f"{branch.repo.name}@master: {job.error}")]
    assert _files(client, branch) == {}  # the commit was dropped (pachd leaves an empty one on a new branch)
    assert service.cancel("no-such-job") is None


def test_a_job_ends_whatever_goes_wrong_in_it(pachd, unique_name, tmp_path):
    """A path the SDK cannot encode (a name that is not UTF-8, had the route let it through) raised
    outside the errors the job expected, and the job stayed `running`."""
    client = connect(pachd.address)
    branch = _branch(client, unique_name("odd"))
    (tmp_path / "a.txt").write_bytes(b"a")
    recorded = []
    service = uploads.Uploads(record=lambda *args: recorded.append(args))
    job = service.start(client, branch, [(str(tmp_path / "a.txt"), "/x\udcff.txt", 1)], "x")
    wait_for(lambda: recorded, 30, what="the job to end")
    assert job.state == uploads.ERROR and job.error.startswith("upload failed: "), job.error
    assert _files(client, branch) == {}
