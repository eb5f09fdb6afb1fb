"""Kernels of other architectures on this host's kernel: an arm64 Debian 12 userland
under qemu-user (binfmt_misc, F flag), and an i386 one natively (the 32-bit
personality). dev/setup registers the handlers and bootstraps both bases
(arm64v8/debian:bookworm, i386/debian:bookworm); without the bases, `install
--platform` bootstraps them itself.
"""

import asyncio
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from distrokernels.engine import LABEL_KERNEL_ID
from distrokernels.hostkernel import read_host
from distrokernels.probe import read_userland

from .conftest import BASE, SUITES, interrupted, run_cli, running, warm
from .users import as_user, assert_kernel_runs_as_user, install_checkout, make_user

ARM64 = "distro-debian-12-arm64"
I386 = "distro-debian-12-i386"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
HANDLER = BINFMT / "qemu-aarch64"
INTERRUPTED_WITHIN = 2.0  # seconds: the bound, under emulation too
USER = "dk-tester"


def install(platform: str) -> dict:
    """`install debian:bookworm --platform P`, never pulling: its --json facts."""
    done = run_cli("install", BASE, "--platform", platform, "--no-pull", "--replace", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def arm64_kernel(engine) -> dict:
    if not HANDLER.is_file():
        if os.environ.get("CI"):
            pytest.fail("no qemu-aarch64 binfmt handler: dev/setup registers qemu-user-static's")
        pytest.skip("no qemu-aarch64 binfmt handler registered (apt-get install qemu-user-static)")
    return install("linux/arm64")


@pytest.fixture(scope="module")
def i386_kernel(engine) -> dict:
    return install("linux/386")


def containers_of(engine, kernel_id: str) -> list:
    return [c for c in engine.kernel_containers() if c.labels.get(LABEL_KERNEL_ID) == kernel_id]


async def test_an_arm64_kernel_runs_emulated_and_lives_as_a_native_one(
    arm64_kernel, engine, tmp_path
):
    assert arm64_kernel["display_name"] == "Python 3.11 (Debian 12, arm64)"
    assert arm64_kernel["platform"] == "linux/arm64"
    assert engine.find_image(arm64_kernel["image_id"])["Architecture"] == "arm64"
    assert engine.find_image(BASE)["Architecture"] == "amd64"  # the native base stays
    async with running(ARM64, tmp_path, ready_timeout=120) as (manager, client):
        kernel_id = manager.kernel_id
        code = "import os, platform; print(platform.machine()); open('made.txt', 'w')"
        reply = await client.execute_interactive(code, timeout=60, output_hook=_collect(out := []))
        assert reply["content"]["status"] == "ok"
        assert "".join(out) == "aarch64\n"
        assert (tmp_path / "made.txt").stat().st_uid == os.getuid()
        started = time.monotonic()
        ename = await asyncio.wait_for(interrupted(manager, client), 60)
        assert ename == "KeyboardInterrupt"
        assert time.monotonic() - started - 1 < INTERRUPTED_WITHIN  # interrupted() sleeps 1 s
        await manager.restart_kernel()
        await client.wait_for_ready(timeout=120)
        reply = await client.execute_interactive(
            "import platform; print(platform.machine())",
            timeout=60,
            output_hook=_collect(out := []),
        )
        assert "".join(out) == "aarch64\n"
    assert containers_of(engine, kernel_id) == []


def test_an_arm64_kernel_runs_a_notebook_and_says_its_platform(arm64_kernel, tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": ARM64, "display_name": "x"}
    notebook.cells = [nbformat.v4.new_code_cell("import platform; print(platform.machine())")]
    path = tmp_path / "arm.ipynb"
    nbformat.write(notebook, path)
    done = run_cli("run", str(path))
    assert done.returncode == 0, done.stderr
    ran = nbformat.read(path, as_version=4)
    assert ran.cells[0].outputs[0]["text"] == "aarch64\n"
    assert ran.metadata["distrokernels"]["platform"] == "linux/arm64"
    listed = {row["name"]: row for row in json.loads(run_cli("list", "--json").stdout)}
    assert listed[ARM64]["platform"] == "linux/arm64"
    assert listed[ARM64]["display_name"] == "Python 3.11 (Debian 12, arm64)"
    assert "linux/arm64" in run_cli("images").stdout
    assert json.loads(run_cli("export", ARM64).stdout)["base"]["platform"] == "linux/arm64"


async def test_an_arm64_kernel_is_served_warm_by_a_servers_pool(arm64_kernel, server):
    folder = server.root / "notebooks"
    _, _, was_warm = await server.start(ARM64, folder)
    assert not was_warm
    pooled = await warm(ARM64)
    kernel_id, container, was_warm = await server.start(ARM64, folder)
    assert was_warm and container in pooled
    assert await server.run(kernel_id, "import platform; print(platform.machine())") == "aarch64\n"


def test_an_arm64_kernel_is_pinned_synced_and_compared_like_a_native_one(
    arm64_kernel, installed_kernel, tmp_path
):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": ARM64, "display_name": "x"}
    notebook.cells = [nbformat.v4.new_code_cell("import sys; print(sys.version_info[:2])")]
    path = tmp_path / "pinned.ipynb"
    nbformat.write(notebook, path)
    assert run_cli("pin", str(path)).returncode == 0
    pin = nbformat.read(path, as_version=4).metadata["distrokernels"]["pin"]
    assert pin["lock"]["base"]["platform"] == "linux/arm64"
    removed = run_cli("remove", ARM64)  # the kernelspec; its image stays as the cache
    assert removed.returncode == 0, removed.stderr
    synced = run_cli("sync", str(path))  # the pinned lock says arm64: it rebuilds arm64
    assert synced.returncode == 0, synced.stderr
    listed = {row["name"]: row for row in json.loads(run_cli("list", "--json").stdout)}
    assert listed[ARM64]["platform"] == "linux/arm64"
    compared = run_cli("test", str(path), "--kernels", f"{installed_kernel},{ARM64}", "--strict")
    assert compared.returncode == 0, compared.stdout + compared.stderr


def test_an_arm64_kernel_of_an_unprivileged_user_owns_its_files(arm64_kernel):
    account, work = make_user(USER, docker_group=True)
    install_checkout()
    installed = as_user(
        account, "distrokernels", "install", BASE, "--platform", "linux/arm64", "--no-pull",
        "--replace",
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip() == ARM64
    assert_kernel_runs_as_user(account, work, ARM64)


async def test_an_i386_kernel_reports_i686_natively(i386_kernel, engine, tmp_path):
    assert i386_kernel["display_name"] == "Python 3.11 (Debian 12, i386)"
    async with running(I386, tmp_path) as (manager, client):
        reply = await client.execute_interactive(
            "import platform, struct; print(platform.machine(), struct.calcsize('P') * 8)",
            timeout=60,
            output_hook=_collect(out := []),
        )
        assert reply["content"]["status"] == "ok"
        assert "".join(out) == "i686 32\n"
        kernel_id = manager.kernel_id
    assert containers_of(engine, kernel_id) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="switching a binfmt handler off needs root")
def test_without_a_binfmt_handler_an_arm64_install_is_refused_in_one_line(arm64_kernel):
    entry = HANDLER.read_text()
    registration = _registration("qemu-aarch64", entry)
    (HANDLER).write_text("-1")  # unregistered, as on a host without qemu-user-static
    try:
        refused = run_cli("install", BASE, "--platform", "linux/arm64", "--no-pull", "--rebuild")
        doctor = run_cli("doctor")
    finally:
        (BINFMT / "register").write_text(registration)
    assert HANDLER.read_text() == entry  # restored as it was
    assert refused.returncode == 14, refused.stderr
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("distrokernels")]
    assert "no binfmt handler runs aarch64 programs" in line
    assert "apt-get install qemu-user-static binfmt-support" in line
    assert f"FAIL  host runs {ARM64}: {ARM64} is arm64 (aarch64)" in doctor.stdout, doctor.stdout


def test_the_host_kernel_rules_accept_every_real_debian_base(engine, arm64_kernel):
    host = read_host(engine.info(), podman=False, local=True)
    for base in (*SUITES, "arm64v8/debian:bookworm", "i386/debian:bookworm"):
        if engine.find_image(base) is None:
            continue  # the foreign bases exist once the fixtures above installed them
        userland = read_userland(engine, base)
        assert userland.libc == "glibc" and userland.libc_version >= (2, 31), base
        assert userland.min_kernel is not None and userland.min_kernel <= host.kernel, base
    doctor = run_cli("doctor").stdout
    assert "FAIL  host runs" not in doctor, doctor
    assert f"ok    host runs {ARM64}: linux/arm64" in doctor, doctor


def _registration(name: str, entry: str) -> str:
    """The line /proc/sys/fs/binfmt_misc/register takes to register ``entry`` again."""
    fields = dict(line.split(" ", 1) for line in entry.splitlines() if " " in line)

    def escaped(hex_text: str) -> str:
        return "".join(f"\\x{hex_text[i : i + 2]}" for i in range(0, len(hex_text), 2))

    flags = fields["flags:"].strip()
    return (
        f":{name}:M:{fields['offset'].strip()}:{escaped(fields['magic'].strip())}:"
        f"{escaped(fields['mask'].strip())}:{fields['interpreter'].strip()}:{flags}"
    )


def _collect(into: list):
    def hook(message):
        if message["msg_type"] == "stream":
            into.append(message["content"]["text"])

    return hook
