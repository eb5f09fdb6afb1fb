"""JupyterLab in a real browser (Debian's Chromium, driven by Playwright): the launcher
card, a notebook in the distro kernel, interrupt, restart, restart-and-run-all, change
kernel, shutdown, a second notebook served by a warm container, and a failing kernel
explained in the error dialog. Screenshots go to test-artifacts/browser/."""

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from distrokernels.engine import LABEL_OWNER, LABEL_POOL
from distrokernels.owners import process_start_time
from distrokernels.pool import idle_warm_containers

from .conftest import kernel_containers

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# Chromium as this machine allows it: no sandbox as root, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEBIAN_12 = "Python 3.11 (Debian 12)"
DEBIAN_11 = "Python 3.9 (Debian 11)"
BROKEN = "Python (image deleted)"
NO_ENGINE = "Python (engine down)"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shutdown_server(url: str, token: str) -> None:
    """Ask the server to stop, which shuts its kernels down.

    jupyter_client keeps the id of a kernel whose start failed among its pending kernels,
    so the server answers 404 ("Kernel does not exist") after shutting the others down.
    """
    request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST")
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise


@pytest.fixture(scope="module")
def broken_kernelspecs(installed_kernel, tmp_path_factory):
    """A kernelspec whose image is gone (as after `docker image rm`), and one whose
    engine does not answer (as when dockerd is down)."""
    from jupyter_client.kernelspec import KernelSpecManager

    source = Path(KernelSpecManager().get_kernel_spec(installed_kernel).resource_dir)
    nowhere = tmp_path_factory.mktemp("engine") / "down.sock"
    targets = []
    for name, display, change in (
        ("dk-test-browser-no-image", BROKEN, {"image": "distrokernels/deleted:0", "image_id": ""}),
        ("dk-test-browser-no-engine", NO_ENGINE, {"docker_host": f"unix://{nowhere}"}),
    ):
        target = Path(os.environ["JUPYTER_DATA_DIR"], "kernels", name)
        shutil.copytree(source, target, dirs_exist_ok=True)
        spec = json.loads((target / "kernel.json").read_text())
        spec["display_name"] = display
        spec["metadata"]["kernel_provisioner"]["config"].update(change)
        (target / "kernel.json").write_text(json.dumps(spec))
        targets.append(target)
    yield
    for target in targets:
        shutil.rmtree(target)


@pytest.fixture(scope="module")
def lab(installed_kernel, suite_kernels, broken_kernelspecs, tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, serving a fresh folder."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: dev/setup installs it")
    root = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    log = (root / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            # A fresh workspace and settings: nothing restored from an earlier session.
            f"--LabApp.workspaces_dir={root / '.workspaces'}",
            f"--LabApp.user_settings_dir={root / '.settings'}",
            # Nothing leaves the machine: no news feed, no update check.
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail(f"JupyterLab did not start: {(root / 'server.log').read_text()[-2000:]}")
    yield url, token, root, server.pid
    # The server's own shutdown stops its kernels (the console's one is still running).
    if server.poll() is None:
        shutdown_server(url, token)
    server.wait(timeout=60)
    log.close()


@pytest.fixture(scope="module")
def page(lab):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url, token, *_ = lab
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.set_default_timeout(60_000)
        tab.goto(f"{url}/lab?token={token}")
        tab.wait_for_selector(".jp-LauncherCard")
        news = tab.locator('.jp-toast-button:has-text("No")')
        if news.count():
            news.first.click()  # the "get notified about Jupyter news?" question
        yield tab
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def menu(page, top: str, item: str) -> None:
    page.click(f'.lm-MenuBar-itemLabel:text-is("{top}")')
    page.click(f'.lm-Menu-itemLabel:text-is("{item}")')


def accept_dialog(page) -> None:
    page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept")


def open_from_launcher(page, display_name: str, category: str = "Notebook") -> None:
    """Click the card in the launcher on screen (earlier launchers stay in hidden tabs)."""
    card = f'.jp-LauncherCard[title="{display_name}"][data-category="{category}"]:visible'
    page.locator(card).click()


def wait_idle(page, display_name: str) -> None:
    page.wait_for_selector(f'.jp-StatusBar-Widget:has-text("{display_name} | Idle")')


def wait_new_notebook_idle(page, display_name: str) -> None:
    """The notebook just opened shows its kernel idle. The status bar may still show the
    previous one's, and a cell run before the new session has its kernel is dropped."""
    page.wait_for_function(
        """(name) => {
            const panels = [...document.querySelectorAll('.jp-NotebookPanel')];
            const newest = panels[panels.length - 1];
            if (!newest || newest.classList.contains('lm-mod-hidden')) return false;
            const indicator = newest.querySelector('.jp-Notebook-ExecutionIndicator');
            return newest.querySelector('.jp-Toolbar').innerText.includes(name)
                && indicator !== null && indicator.getAttribute('data-status') === 'idle';
        }""",
        arg=display_name,
    )


def run_in_new_cell(page, code: str) -> None:
    """Type ``code`` into the last cell and run it with Shift+Enter."""
    editor = page.locator(".jp-Notebook .jp-Cell .cm-content").last
    editor.click()
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")


def last_output(page) -> str:
    return page.locator(".jp-Notebook .jp-OutputArea-output").last.inner_text()


def wait_output(page, text: str, timeout: float = 60) -> str:
    page.wait_for_selector(
        f'.jp-Notebook .jp-OutputArea-output:has-text("{text}")', timeout=timeout * 1000
    )
    return last_output(page)


def test_launcher_shows_distro_cards_with_their_logos(page):
    card = page.locator(f'.jp-LauncherCard[title="{DEBIAN_12}"][data-category="Notebook"]')
    assert card.count() == 1
    assert "kernelspecs/distro-debian-12/logo" in card.locator("img").get_attribute("src")
    assert page.locator(f'.jp-LauncherCard[title="{DEBIAN_11}"][data-category="Notebook"]').count()
    shot(page, "01-launcher")


def test_notebook_runs_in_debian_and_survives_interrupt_restart_and_kernel_change(
    page, engine, lab
):
    open_from_launcher(page, DEBIAN_12)
    wait_idle(page, DEBIAN_12)
    run_in_new_cell(
        page,
        "import sys; print(open('/etc/os-release').read().splitlines()[0], sys.version.split()[0])",
    )
    output = wait_output(page, "Debian GNU/Linux 12")
    assert "3.11" in output
    shot(page, "02-notebook-debian-12")

    # Sleeps until the file `skip-sleep` exists (made before "run all", below).
    run_in_new_cell(
        page, "import os, time; marker = 1; os.path.exists('skip-sleep') or time.sleep(30)"
    )
    page.wait_for_selector(f'.jp-StatusBar-Widget:has-text("{DEBIAN_12} | Busy")')
    started = time.monotonic()
    menu(page, "Kernel", "Interrupt Kernel")
    wait_output(page, "KeyboardInterrupt", timeout=10)
    assert time.monotonic() - started < 10
    shot(page, "03-interrupted")

    menu(page, "Kernel", "Restart Kernel…")
    accept_dialog(page)
    wait_idle(page, DEBIAN_12)
    run_in_new_cell(page, "print('marker' in globals())")
    assert wait_output(page, "False").strip() == "False"
    shot(page, "04-restarted")

    (lab[2] / "skip-sleep").touch()
    menu(page, "Kernel", "Restart Kernel and Run All Cells…")
    accept_dialog(page)
    page.wait_for_selector('.jp-Notebook .jp-OutputArea-output:has-text("True")')
    wait_idle(page, DEBIAN_12)
    assert "Debian GNU/Linux 12" in page.locator(".jp-OutputArea-output").first.inner_text()
    shot(page, "05-restart-and-run-all")

    menu(page, "Kernel", "Change Kernel…")
    page.locator(".jp-Dialog select").select_option(label=DEBIAN_11)
    accept_dialog(page)
    wait_idle(page, DEBIAN_11)
    run_in_new_cell(page, "print(open('/etc/os-release').read().splitlines()[0])")
    wait_output(page, "Debian GNU/Linux 11")
    shot(page, "06-changed-to-debian-11")

    url, token, *_ = lab
    kernels = json.load(urllib.request.urlopen(f"{url}/api/kernels?token={token}"))
    assert [k["name"] for k in kernels] == ["distro-debian-11"]
    menu(page, "Kernel", "Shut Down Kernel")
    page.wait_for_selector('.jp-StatusBar-Widget:has-text("No Kernel")')
    assert json.load(urllib.request.urlopen(f"{url}/api/kernels?token={token}")) == []
    deadline = time.monotonic() + 30  # a server removes a stopped kernel off the user's path
    while kernel_containers(engine, kernels[0]["id"]):
        assert time.monotonic() < deadline, "the kernel's container outlived its shutdown"
        time.sleep(0.2)
    shot(page, "07-shut-down")


def test_console_banner_names_the_distro(page):
    menu(page, "File", "New Launcher")
    open_from_launcher(page, DEBIAN_12, "Console")
    banner = page.wait_for_selector('.jp-CodeConsole-banner:has-text("userland via distrokernels")')
    assert "Debian GNU/Linux 12 (bookworm)" in banner.inner_text()
    shot(page, "08-console-banner")


@pytest.mark.parametrize(
    ("display", "reason", "fix"),
    [
        (BROKEN, "the image of this kernel is gone", "distrokernels install debian:bookworm"),
        (NO_ENGINE, "the Docker engine is not reachable", "dockerd"),
    ],
    ids=["image deleted", "engine down"],
)
def test_kernel_that_cannot_start_is_explained_in_the_dialog_within_seconds(
    page, display, reason, fix
):
    menu(page, "File", "New Launcher")
    started = time.monotonic()
    open_from_launcher(page, display)
    dialog = page.wait_for_selector(f'.jp-Dialog:has-text("{reason}")', timeout=30_000)
    assert time.monotonic() - started < 30
    assert fix in dialog.inner_text()
    shot(page, f"09-start-error-{display.split('(')[1].rstrip(')').replace(' ', '-')}")
    while page.locator(".jp-Dialog").count():  # the error, then "select a kernel"
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)


def test_a_second_notebook_is_served_by_a_warm_container(page, engine):
    """The server keeps a warm Debian 12 container once it has started one: the next
    notebook's kernel runs in it, as the user would never notice but for the speed."""

    def warm_ids() -> set[str]:
        return {c.id for c in idle_warm_containers(engine) if c.kernelspec == "distro-debian-12"}

    hostnames = []
    for number in (1, 2):
        deadline = time.monotonic() + 60
        while number == 2 and not warm_ids():
            assert time.monotonic() < deadline, "the server did not refill its pool"
            time.sleep(0.2)
        waiting = warm_ids()
        notebooks = page.locator(".jp-NotebookPanel").count()
        menu(page, "File", "New Launcher")
        open_from_launcher(page, DEBIAN_12)
        page.wait_for_function(
            f"document.querySelectorAll('.jp-NotebookPanel').length > {notebooks}"
        )
        wait_new_notebook_idle(page, DEBIAN_12)
        marker = f"HOST{number}"
        run_in_new_cell(page, f"import os; print('{marker}', os.environ['HOSTNAME'])")
        output = page.locator(f'.jp-OutputArea-output:has-text("{marker}"):visible')
        output.wait_for()
        hostnames.append(output.inner_text().split()[-1])
        shot(page, f"10-notebook-{number}")
    first, second = hostnames
    assert first != second
    served = [c for c in waiting if c.startswith(second)]
    assert served, f"the second notebook's container {second} was not a warm one {waiting}"
    labels = engine.api.inspect_container(served[0])["Config"]["Labels"]
    assert LABEL_POOL in labels


def test_server_shutdown_leaves_no_kernel_container(lab, engine):
    """Neither its kernels nor its warm containers: none with the server as owner."""
    url, token, _, pid = lab
    kernels = json.load(urllib.request.urlopen(f"{url}/api/kernels?token={token}"))
    assert kernels, "the console's and the notebooks' kernels are still running here"

    def owned() -> list:
        return [
            c
            for c in engine.kernel_containers()
            if c.labels.get(LABEL_OWNER, "").split(":")[1:2] == [str(pid)]
        ]

    assert len(owned()) > len(kernels)  # the kernels, and at least one warm container
    deadline = time.monotonic() + 60
    while process_start_time(pid):
        # The first request may end in a 404 for the kernel that failed to start, before
        # the server stops (jupyter_server's /api/shutdown): ask again, as a user would.
        with contextlib.suppress(urllib.error.URLError):  # it is gone meanwhile
            shutdown_server(url, token)
        assert time.monotonic() < deadline, "the server did not exit"
        time.sleep(1)
    assert owned() == [], "kernel or warm containers outlived the server"
