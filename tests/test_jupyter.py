"""pachtray.jupyter without a JupyterLab: the pins, set-up failures, kernels, a user's own Jupyter.

The managed JupyterLab itself (made, started, reused, in a browser) is tested in
tests/e2e/test_jupyterlab_browser.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import PY, free_port, wait_for
from fake_envs import fake_env, fake_jupyter, pip_index_only
from pachtray import config
from pachtray.errors import PachtrayError
from pachtray.jupyter import environment, kernels, pins, server, user_jupyter
from pachtray.jupyter.server import Lab, Wiring


def pinned() -> dict[str, Version]:
    out = {}
    for line in pins.CONSTRAINTS.splitlines():
        name, _, version = line.partition("==")
        out[name.strip().lower().replace("_", "-")] = Version(version.strip())
    return out


# ----------------------------------------------------------------- pins and stamp


def test_pins_hold_a_set_that_loads_the_28_panel():
    versions = pinned()
    for text in pins.REQUIREMENTS:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in versions, f"{name} is not pinned"
        assert req.specifier.contains(versions[name], prereleases=True), f"{name}=={versions[name]} breaks {text}"
    assert versions["jupyterlab"].major == 3  # the panel is built for JupyterLab 3 (@jupyterlab/application ^3.1)
    assert versions["jupyter-server"] < Version("2.8")  # jupyterlab-pachyderm 2.8's own requirement
    assert (versions["jupyterlab-pachyderm"].major, versions["jupyterlab-pachyderm"].minor) == (2, 8)
    assert versions["setuptools"] < Version("82")  # betterproto imports pkg_resources
    assert "ipykernel" in versions and "pycurl" in versions
    assert sys.version_info[:2] in pins.PYTHONS  # the tests make the environment with this interpreter


def test_stamp_follows_the_pins_and_a_stale_environment_is_not_ready(tmp_path, monkeypatch):
    env = environment.ManagedEnv(tmp_path / "env")
    assert not env.ready()  # nothing there
    (tmp_path / "env").mkdir()
    env.stamp_file.write_text(environment.stamp() + "\n")
    assert not env.ready()  # stamped, but no Python runs the extension there
    before = environment.stamp()
    monkeypatch.setattr(environment, "CONSTRAINTS", pins.CONSTRAINTS.replace("jupyterlab==3.6.8", "jupyterlab==3.6.7"))
    assert environment.stamp() != before


def test_the_environment_path_comes_from_the_data_dir_or_the_test_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(environment.ENV_VAR, raising=False)
    assert environment.default_path() == config.data_dir() / "jupyterlab" / "env"
    monkeypatch.setenv(environment.ENV_VAR, str(tmp_path / "cached"))
    assert environment.ManagedEnv().path == tmp_path / "cached"


def test_no_supported_python_is_a_clear_error(monkeypatch):
    assert environment.find_python()  # this interpreter is one the pins fit
    monkeypatch.setattr(environment, "PYTHONS", ((2, 7),))
    with pytest.raises(environment.SetupFailed) as failed:
        environment.find_python()
    assert "needs Python 2.7" in str(failed.value) and sys.executable in str(failed.value)


def test_unreachable_index_is_a_clear_error_and_leaves_nothing_half_made(tmp_path, monkeypatch):
    pip_index_only(monkeypatch, free_port())  # nobody listens there
    monkeypatch.setenv(environment.ENV_VAR, str(tmp_path / "env"))
    proc = subprocess.run([PY, "-m", "pachtray", "jupyter", "--setup-only"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "could not reach the Python package index" in proc.stderr
    assert "Connection refused" in proc.stderr  # what pip said, so the user sees why
    assert proc.stdout == ""
    assert not (tmp_path / "env").exists()
    assert "Connection refused" in (tmp_path / "env-pip.log").read_text()  # pip's own log, kept


def test_cli_refuses_a_daemon_the_extension_cannot_reach_before_installing(tmp_path, monkeypatch):
    monkeypatch.setenv(environment.ENV_VAR, str(tmp_path / "env"))
    config.Settings(api_port=free_port(), sock_path="", mount_dir=str(tmp_path / "pfs")).save()
    proc = subprocess.run([PY, "-m", "pachtray", "jupyter", "--no-browser"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "can only reach the daemon on port 9002 or through a socket" in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "env").exists()


def test_wiring_sets_what_the_extension_reads():
    assert Wiring("/m", "/tmp/x.sock", 1234).env() == {"PFS_MOUNT_DIR": "/m", "DEFAULT_SCHEMA": "http_unix",
                                                       "PFS_SOCK_PATH": "/tmp/x.sock"}
    assert Wiring("/m", "", 9002).env() == {"PFS_MOUNT_DIR": "/m", "DEFAULT_SCHEMA": "http"}
    with pytest.raises(PachtrayError, match="port 9002 or through a socket"):
        Wiring("/m", "", 9003).env()


# ----------------------------------------------------------------- the record of the running server


def test_stop_never_signals_a_recorded_pid_that_is_not_our_jupyterlab(tmp_path):
    """A stale record whose pid now belongs to another process (here: this test) is only forgotten."""
    record = tmp_path / "server.json"
    server._save_record(Lab(pid=os.getpid(), port=free_port(), token="t", env_path=str(tmp_path / "env"),
                            stamp="x", wiring={}, log_path=""), record)
    assert record.stat().st_mode & 0o777 == 0o600  # it holds the token
    assert server.running(record) is None  # nothing answers on that port
    assert server.stop(record) is None
    assert not record.exists()  # and we are still alive to check


def test_stop_ends_a_recorded_server_that_no_longer_answers(tmp_path):
    """A hung JupyterLab (recorded, alive, not answering) is ended by pid once its command line is ours."""
    env_path = tmp_path / "env"
    hung = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(300)  # {env_path}"],
                            start_new_session=True)
    try:
        record = tmp_path / "server.json"
        server._save_record(Lab(pid=hung.pid, port=free_port(), token="t", env_path=str(env_path), stamp="x",
                                wiring={}, log_path=""), record)
        assert server.stop(record) is not None
        wait_for(lambda: hung.poll() is not None, 30, what="the hung server to end")
        assert hung.returncode == -signal.SIGTERM and not record.exists()
    finally:
        if hung.poll() is None:
            hung.kill()


@pytest.mark.parametrize("ours", [True, False], ids=["our hung server", "another program"])
def test_a_pid_reused_after_our_server_ended_is_judged_by_its_command_line(tmp_path, monkeypatch, ours):
    """A server this process started and saw end leaves its pid free; pid_max is 32768 here, so the
    pid comes back for someone else: its old entry must not make it "ours" (signalled) or "not alive"
    (a hung server left running). CI met the second."""
    env_path = tmp_path / "env"
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    mark = env_path if ours else tmp_path / "someone-else"
    reused = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(300)  # {mark}"],
                              start_new_session=True)
    monkeypatch.setitem(server._children, reused.pid, ended)  # what pid reuse leaves in the table
    try:
        record = tmp_path / "server.json"
        server._save_record(Lab(pid=reused.pid, port=free_port(), token="t", env_path=str(env_path), stamp="x",
                                wiring={}, log_path=""), record)
        if ours:
            assert server.stop(record) is not None
            wait_for(lambda: reused.poll() is not None, 30, what="the hung server to end")
        else:
            assert server.stop(record) is None
            assert reused.poll() is None  # not ours: left alone
    finally:
        if reused.poll() is None:
            reused.kill()
            reused.wait()


# ----------------------------------------------------------------- kernels


def test_add_python_environment_as_kernel(tmp_path):
    python = fake_env(tmp_path / "projects" / "ml" / ".venv", modules=("ipykernel",))
    spec = kernels.add_python_kernel(tmp_path / "projects" / "ml" / ".venv")  # the environment's folder
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert spec.name == f"ml-venv-py{version.replace('.', '')}"
    assert spec.display_name == f"Python {version} (ml-venv)"
    assert Path(spec.folder) == kernels.user_data_dir() / "kernels" / spec.name
    assert str(kernels.user_data_dir()).startswith(os.environ["XDG_DATA_HOME"])
    written = json.loads((Path(spec.folder) / "kernel.json").read_text())
    assert written["argv"] == [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert written["language"] == "python"
    assert [k.name for k in kernels.list_kernels()].count(spec.name) == 1

    again = kernels.add_python_kernel(python, display_name="ML")  # by its python; replaces the first
    assert again.name == spec.name and again.display_name == "ML"
    assert [k.display_name for k in kernels.list_kernels() if k.name == spec.name] == ["ML"]


def test_add_kernel_without_ipykernel_says_what_to_run(tmp_path):
    python = fake_env(tmp_path / "bare")
    with pytest.raises(kernels.IpykernelMissing) as missing:
        kernels.add_python_kernel(python)
    assert missing.value.command == f"{python} -m pip install ipykernel"
    assert missing.value.command in str(missing.value)
    assert not (kernels.user_data_dir() / "kernels").exists()
    with pytest.raises(PachtrayError, match="not a Python environment"):
        kernels.add_python_kernel(tmp_path)  # a folder with no python in it


def test_kernels_are_found_where_jupyter_looks_first_one_of_a_name_wins(tmp_path, monkeypatch):
    def write(folder: Path, name: str, display: str) -> None:
        (folder / name).mkdir(parents=True)
        (folder / name / "kernel.json").write_text(json.dumps({"argv": ["x"], "display_name": display,
                                                               "language": "python"}))

    extra = tmp_path / "jupyter-path"
    monkeypatch.setenv("JUPYTER_PATH", str(extra))
    write(extra / "kernels", "shared", "From JUPYTER_PATH")
    write(kernels.user_data_dir() / "kernels", "shared", "From the user's folder")
    write(kernels.user_data_dir() / "kernels", "r", "R")
    env = tmp_path / "env"
    write(env / "share" / "jupyter" / "kernels", "python3", "Python 3 (ipykernel)")
    found = {k.name: k.display_name for k in kernels.list_kernels(env)}
    assert found["shared"] == "From JUPYTER_PATH"
    assert found["r"] == "R" and found["python3"] == "Python 3 (ipykernel)"


# ----------------------------------------------------------------- a Jupyter of the user's own


def test_user_jupyterlab_4_with_the_28_extension_is_explained(tmp_path):
    python = fake_env(tmp_path / "lab4", {"jupyterlab": "4.2.5", "jupyterlab-pachyderm": "2.8.5"},
                      ("jupyterlab", "jupyterlab_pachyderm"))
    with pytest.raises(user_jupyter.PanelWillNotLoad) as refused:
        user_jupyter.check_extension(str(python))
    assert "JupyterLab 4.2.5 and jupyterlab-pachyderm 2.8.5" in str(refused.value)
    assert "will not load" in str(refused.value) and "Pachtray's own JupyterLab" in str(refused.value)

    bare = fake_env(tmp_path / "lab4-bare", {"jupyterlab": "4.0.0"}, ("jupyterlab",))
    with pytest.raises(user_jupyter.PanelWillNotLoad, match="no jupyterlab-pachyderm"):
        user_jupyter.check_extension(str(bare))  # installing the 2.8 extension there would not help

    ok = fake_env(tmp_path / "lab3", {"jupyterlab": "3.6.8", "jupyterlab-pachyderm": "2.8.5"},
                  ("jupyterlab", "jupyterlab_pachyderm"))
    assert user_jupyter.check_extension(str(ok))["jupyterlab"] == "3.6.8"


def test_user_jupyter_without_the_extension_gets_the_pip_command(tmp_path):
    python = fake_env(tmp_path / "lab3", {"jupyterlab": "3.6.8"}, ("jupyterlab",))
    jupyter = fake_jupyter(tmp_path, python)
    with pytest.raises(user_jupyter.ExtensionMissing) as missing:
        user_jupyter.open_user_jupyter(str(jupyter), Wiring("/pfs", "/tmp/x.sock", 9002), str(tmp_path / "jl.log"))
    assert missing.value.pip_command == f"{python} -m pip install 'jupyterlab-pachyderm>=2.8,<2.9'"
    assert missing.value.pip_command in str(missing.value)
    assert not (tmp_path / "ran.json").exists()


def test_user_jupyter_starts_with_the_daemon_environment(tmp_path):
    python = fake_env(tmp_path / "lab3", {"jupyterlab": "3.6.8", "jupyterlab-pachyderm": "2.8.5"},
                      ("jupyterlab", "jupyterlab_pachyderm"))
    jupyter = fake_jupyter(tmp_path, python)
    launch = user_jupyter.open_user_jupyter(str(jupyter), Wiring(str(tmp_path / "pfs"), str(tmp_path / "pfs.sock"),
                                                                 9123), str(tmp_path / "jl.log"))
    assert launch.python == str(python)
    wait_for(lambda: (tmp_path / "ran.json").exists() and (tmp_path / "ran.json").stat().st_size > 0, 30,
             what="fake jupyter to run")
    ran = json.loads((tmp_path / "ran.json").read_text())
    assert ran["argv"] == ["lab"]
    assert ran["env"]["PFS_MOUNT_DIR"] == str(tmp_path / "pfs")
    assert ran["env"]["DEFAULT_SCHEMA"] == "http_unix"
    assert ran["env"]["PFS_SOCK_PATH"] == str(tmp_path / "pfs.sock")
    try:
        os.kill(launch.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already exited
