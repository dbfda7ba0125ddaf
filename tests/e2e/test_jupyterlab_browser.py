"""End-to-end: Pachtray's JupyterLab, as `pachtray jupyter` makes, starts, finds and stops it,
against a real daemon, driven in Debian's chromium by Playwright (nothing downloads a browser).

The environment is the one the tests cache at .venv-jlab (`jlab_venv`, made by the app's own
set-up); PACHTRAY_JUPYTER_ENV points `pachtray jupyter` at it. Everything else is the test's own:
settings, data dir, HOME, daemon and ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import PY, ROOT, wait_for
from jlab_support import seeded  # noqa: F401 - fixture
from pachtray import config
from pachtray.jupyter import environment, kernels, server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

URL = re.compile(r"^http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]{32,})$")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps"]
ARTIFACTS = Path(os.environ.get("PACHTRAY_TEST_ARTIFACTS", ROOT / ".test-artifacts"))


@pytest.fixture
def lab_env(daemon, jlab_venv, tmp_path):
    """Settings wired to the test's daemon, and the environment `pachtray jupyter` runs with; stops the lab after."""
    config.Settings(api_port=daemon.port, sock_path=daemon.sock_path, mount_dir=str(daemon.mount_dir),
                    restore_mounts=False).save()
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, PACHTRAY_JUPYTER_ENV=str(jlab_venv), HOME=str(home))
    yield env
    lab = server.load_record()
    subprocess.run([PY, "-m", "pachtray", "jupyter", "--stop"], env=env, capture_output=True, timeout=120)
    if lab is not None and server._alive(lab.pid):  # noqa: SLF001 - never leave a server behind
        server._end(lab.pid)  # noqa: SLF001


def pachtray_jupyter(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pachtray", "jupyter", *args], env=env, capture_output=True, text=True,
                          timeout=900)


def open_lab(env: dict) -> tuple[str, subprocess.CompletedProcess]:
    proc = pachtray_jupyter(env, "--no-browser")
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.strip().splitlines()[-1]
    assert URL.match(url), proc.stdout
    return url, proc


def get(url: str, token: str = "", timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def page_config(url: str) -> dict:
    status, body = get(url)
    assert status == 200
    found = re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', body, re.S)
    return json.loads(found.group(1))


def test_cli_sets_up_starts_reuses_and_stops_the_managed_jupyterlab(lab_env, daemon, seeded, jlab_venv):
    env_dir = environment.ManagedEnv(jlab_venv)
    stamp_mtime = env_dir.stamp_file.stat().st_mtime_ns
    # two at once (the tray and a terminal, say): one JupyterLab, both get its URL
    both = [subprocess.Popen([PY, "-m", "pachtray", "jupyter", "--no-browser"], env=lab_env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [proc.communicate(timeout=900) for proc in both]
    assert [proc.returncode for proc in both] == [0, 0], outs
    urls = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(urls) == 1 and URL.match(next(iter(urls))), outs
    url = urls.pop()
    port, token = URL.match(url).groups()
    base = f"http://127.0.0.1:{port}"
    assert sorted("started" in err for _, err in outs) == [False, True], outs
    assert any("already running" in err for _, err in outs)
    # the cached environment was reused as it is: checked, not made again
    assert not any("Setting up" in err or "Downloading" in err for _, err in outs)
    assert env_dir.stamp_file.stat().st_mtime_ns == stamp_mtime

    # JupyterLab 3.x, with the extension's frontend among the loaded federated extensions
    cfg = page_config(url)
    assert cfg["appVersion"].startswith("3."), cfg["appVersion"]
    assert "jupyterlab-pachyderm" in [e["name"] for e in cfg["federated_extensions"]]
    assert "jupyterlab-pachyderm:telemetry" in cfg["disabledExtensions"]  # no click tracking
    # token-protected, loopback only
    assert get(f"{base}/api/status")[0] == 403
    assert get(f"{base}/api/status", token)[0] == 200
    lab = server.load_record()
    assert lab.port == int(port) and lab.token == token
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert listening.strip() and all("127.0.0.1:" in line for line in listening.strip().splitlines())

    # wired to the test's daemon: the extension lists its repos and reads the mount dir through it
    status, body = get(f"{base}/pachyderm/v2/repos", token)
    assert status == 200 and seeded in body.decode(), body[:500]
    environ = Path(f"/proc/{lab.pid}/environ").read_bytes().split(b"\0")
    assert f"PFS_SOCK_PATH={daemon.sock_path}".encode() in environ
    assert f"PFS_MOUNT_DIR={daemon.mount_dir}".encode() in environ
    assert b"DEFAULT_SCHEMA=http_unix" in environ

    # kernels: the default Python one, and a Python environment the user added
    added = kernels.add_python_kernel(env_dir.python, display_name="My analysis env")
    status, body = get(f"{base}/api/kernelspecs", token)
    specs = json.loads(body)["kernelspecs"]
    assert "python3" in specs and added.name in specs
    assert specs[added.name]["spec"]["display_name"] == "My analysis env"

    # a second open finds the running one
    again_url, again = open_lab(lab_env)
    assert again_url == url and "already running" in again.stderr

    stopped = pachtray_jupyter(lab_env, "--stop")
    assert stopped.returncode == 0 and f"stopped JupyterLab on port {port}" in stopped.stderr
    wait_for(lambda: not server._alive(lab.pid), 30, what="JupyterLab to exit")  # noqa: SLF001
    assert not lab.answering() and server.load_record() is None
    assert "was not running" in pachtray_jupyter(lab_env, "--stop").stderr


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_browser_panel_mounts_a_repo_and_a_notebook_reads_it(lab_env, daemon, seeded, browser, tmp_path, capsys):
    url, _ = open_lab(lab_env)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    shot = tmp_path / "jupyterlab.png"
    try:
        page.goto(url)
        page.wait_for_selector("#main", timeout=120_000)
        tab = page.locator('li.lm-TabBar-tab[data-id="pachyderm-mount"]')  # the panel's tab in the left bar
        tab.wait_for(timeout=60_000)
        if "lm-mod-current" not in (tab.get_attribute("class") or ""):
            tab.click()
        panel = page.locator("#pachyderm-mount")

        # the panel lists the repo (the extension names mounts <project>_<repo>)
        name = f"default_{seeded}"
        item = panel.locator('[data-testid="ListItem__repo"]', has_text=name)
        item.locator('[data-testid="ListItem__mount"]').click(timeout=60_000)
        mounted = panel.locator('[data-testid="ListItem__repo"]', has_text=name).locator(
            '[data-testid="ListItem__unmount"]')
        mounted.wait_for(timeout=60_000)
        assert [m["name"] for m in daemon.get("/mounts").json()["mounted"]] == [name]

        # the mounted repo opens in the panel's file browser
        panel.locator(".pachyderm-mount-list-item-name", has_text=name).first.click()
        panel.locator(".jp-DirListing-item", has_text="a.txt").wait_for(timeout=60_000)
        assert "dir" in panel.locator(".jp-DirListing-content").inner_text()
        assert name in panel.locator(".jp-BreadCrumbs").inner_text()

        # a notebook (default Python kernel) reads the mounted file
        page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
        cell = page.locator(".jp-NotebookPanel .jp-Cell").first
        cell.locator(".CodeMirror").click(timeout=60_000)
        page.keyboard.type(f"print(open({str(daemon.mount_dir / name / 'a.txt')!r}).read().upper())")
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
        output.wait_for(timeout=120_000)
        assert output.inner_text().strip() == "HELLO FROM PACHYDERM"
    finally:
        page.screenshot(path=str(shot))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        kept = ARTIFACTS / "jupyterlab-browser.png"
        shutil.copyfile(shot, kept)
        with capsys.disabled():
            print(f"\nJupyterLab screenshot: {kept} (and {shot})")
    assert not errors, errors
