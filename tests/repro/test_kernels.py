"""Finding a notebook's kernel: a real `jupyter server` (.venv-jlab), its sessions API, a real ipykernel."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from reprohelpers import Jupyter, JupyterClient, cli, load, mount, put_commit

from conftest import PY
from pachtray import config
from pachtray.jupyter import server
from pachtray.repro import kernels

FILES = {"a.txt": b"alpha\n", "b.txt": b"bravo\n", "c.txt": b"charlie\n"}


@pytest.fixture
def jupyter(tmp_path, jlab_venv):
    j = Jupyter(tmp_path / "jupyter", jlab_venv)
    yield j
    j.stop()


def test_lock_of_a_notebook_finds_its_kernel_through_the_jupyter_sessions(daemon, client, unique_name, jupyter):
    repo = unique_name("nb")
    commit = put_commit(client, repo, FILES)
    mount(daemon, "data", repo)
    nb, kernel_id = jupyter.open_notebook("analysis.ipynb")
    other_nb, other_kernel = jupyter.open_notebook("other.ipynb")
    root = daemon.mount_dir / "data"
    # A cell reads one file itself and one through a shell command (a subprocess of the kernel).
    jupyter.run(kernel_id, f"data = open({str(root / 'a.txt')!r}, 'rb').read()\n"
                           f"import subprocess; subprocess.run(['cat', {str(root / 'b.txt')!r}], check=True)")
    jupyter.run(other_kernel, f"open({str(root / 'c.txt')!r}).read()")

    listed = daemon.get("/pachtray/v1/kernels").json()
    assert listed["problems"] == []
    by_id = {k["kernel_id"]: k for k in listed["kernels"]}
    assert by_id[kernel_id]["notebook"] == str(nb) and by_id[kernel_id]["files_read"] == 2
    assert by_id[other_kernel]["notebook"] == str(other_nb) and by_id[other_kernel]["files_read"] == 1
    assert by_id[kernel_id]["server"] == jupyter.url + "/"
    pid = by_id[kernel_id]["pid"]
    assert f"kernel-{kernel_id}.json" in Path(f"/proc/{pid}/cmdline").read_text()

    proc = subprocess.run([*cli_cmd(), "lock", "analysis.ipynb", "--port", str(daemon.port)], cwd=jupyter.root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lock_path = jupyter.root / "analysis.pachyderm.lock"
    assert f"wrote {lock_path}: 1 commit(s), 2 file(s) read by kernel pid {pid}" in proc.stdout
    entry = load(lock_path)["mounts"][0]
    assert (entry["name"], entry["repo"], entry["commit"]) == ("data", repo, commit)
    assert [f["path"] for f in entry["files"]] == ["/a.txt", "/b.txt"]

    answer = daemon.get("/pachtray/v1/lock", params={"notebook": str(other_nb)}).json()
    assert answer["kernel"]["kernel_id"] == other_kernel and answer["pid"] == by_id[other_kernel]["pid"]
    assert [f["path"] for f in answer["lock"]["mounts"][0]["files"]] == ["/c.txt"]


def cli_cmd() -> list[str]:
    return [PY, "-m", "pachtray"]


@pytest.mark.timeout(900)
def test_the_managed_jupyterlab_is_found_from_its_record(daemon_factory, pachd, client, unique_name, jlab_venv,
                                                         tmp_path):
    """`pachtray jupyter` starts Pachtray's JupyterLab; the daemon finds its notebooks' kernels through
    the record of it, even where the daemon sees no jpserver files (another runtime dir)."""
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "other-runtime"
    elsewhere.mkdir()
    daemon = daemon_factory(pachd.address, env={"JUPYTER_RUNTIME_DIR": str(elsewhere), "HOME": str(home)})
    config.Settings(api_port=daemon.port, sock_path=daemon.sock_path, mount_dir=str(daemon.mount_dir),
                    restore_mounts=False).save()
    env = dict(os.environ, PACHTRAY_JUPYTER_ENV=str(jlab_venv), HOME=str(home))
    proc = subprocess.run([*cli_cmd(), "jupyter", "--no-browser"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    try:
        lab = server.load_record()
        assert proc.stdout.strip().splitlines()[-1] == lab.url
        repo = unique_name("managed")
        commit = put_commit(client, repo, FILES)
        mount(daemon, "data", repo)
        jl = JupyterClient(f"http://127.0.0.1:{lab.port}", lab.token, home, jlab_venv)
        nb, kernel_id = jl.open_notebook("managed.ipynb")
        jl.run(kernel_id, f"open({str(daemon.mount_dir / 'data' / 'c.txt')!r}).read()")

        listed = daemon.get("/pachtray/v1/kernels").json()
        assert [(k["notebook"], k["files_read"]) for k in listed["kernels"]] == [(str(nb), 1)]
        assert listed["kernels"][0]["server"] == f"http://127.0.0.1:{lab.port}/"
        out = tmp_path / "managed.lock"
        locked = cli("lock", str(nb), "-o", str(out), "--port", str(daemon.port))
        assert locked.returncode == 0, locked.stderr
        entry = load(out)["mounts"][0]
        assert (entry["commit"], [f["path"] for f in entry["files"]]) == (commit, ["/c.txt"])
    finally:
        subprocess.run([*cli_cmd(), "jupyter", "--stop"], env=env, capture_output=True, timeout=120)


def test_a_notebook_without_a_running_kernel_is_a_clear_error(daemon, jupyter, tmp_path):
    nb = jupyter.root / "closed.ipynb"
    nb.write_text("{}")
    proc = cli("lock", str(nb), "--port", str(daemon.port))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert f"no running kernel has {nb} open in 1 running Jupyter server (runtime dir " in proc.stderr
    assert "pachtray lock --pid PID" in proc.stderr
    assert not (jupyter.root / "closed.pachyderm.lock").exists()


def test_runtime_dir_and_stale_server_files(tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTER_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("JUPYTER_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert kernels.runtime_dir() == tmp_path / "share" / "jupyter" / "runtime"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jd"))
    assert kernels.runtime_dir() == tmp_path / "jd" / "runtime"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "rt"))
    assert kernels.runtime_dir() == tmp_path / "rt"

    rt = tmp_path / "rt"
    rt.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    info = {"url": "http://127.0.0.1:1/", "token": "x", "root_dir": str(tmp_path)}
    (rt / f"jpserver-{dead.pid}.json").write_text(json.dumps(dict(info, pid=dead.pid)))  # crashed server
    (rt / f"nbserver-{os.getpid()}.json").write_text(json.dumps(dict(info, pid=os.getpid())))  # classic notebook
    (rt / "jpserver-garbage.json").write_text("{")
    assert kernels.servers() == [kernels.Server("http://127.0.0.1:1/", "x", str(tmp_path), os.getpid())]
    found, problems = kernels.notebook_kernels()
    assert found == [] and len(problems) == 1 and "http://127.0.0.1:1/" in problems[0]


def test_two_kernels_of_one_notebook_are_named_not_guessed(daemon, jupyter, tmp_path, jlab_venv):
    """Two Jupyter servers with the same notebook open (two browser tabs on two servers): which
    kernel ran it is not Pachtray's to guess."""
    from reprohelpers import Jupyter

    second = Jupyter(tmp_path / "jupyter", jlab_venv)  # same notebook folder, another server
    try:
        nb, first_kernel = jupyter.open_notebook("analysis.ipynb")
        _, second_kernel = second.open_notebook("analysis.ipynb")
        pids = {k["kernel_id"]: k["pid"] for k in daemon.get("/pachtray/v1/kernels").json()["kernels"]}
        answer = daemon.get("/pachtray/v1/lock", params={"notebook": str(nb)})
        assert answer.status_code == 409 and "2 kernels have" in answer.text, answer.text
        assert f"pid {pids[first_kernel]}" in answer.text and f"pid {pids[second_kernel]}" in answer.text
        assert "pachtray lock --pid PID" in answer.text
    finally:
        second.stop()
