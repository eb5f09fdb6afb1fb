"""A Debian 12 kernel, installed and run for real against the Docker engine."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

from distrokernels.engines import finish_removals
from distrokernels.errors import KernelStartFailed

from .conftest import execute, kernel_containers, variant_kernelspec


def test_installed_kernel_is_listed_by_jupyter(installed_kernel):
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_client.kernelspecapp", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    specs = json.loads(result.stdout)["kernelspecs"]
    spec = specs[installed_kernel]["spec"]
    assert spec["display_name"] == "Python 3.11 (Debian 12)"
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "distrokernels"
    assert Path(specs[installed_kernel]["resource_dir"], "logo-64x64.png").is_file()


async def test_kernel_runs_in_debian_userland_on_the_host_kernel(kernel):
    output = await kernel.run(
        "import os, sys\n"
        "print(open('/etc/os-release').read())\n"
        "print('RELEASE', os.uname().release)\n"
        "print('CWD', os.getcwd())\n"
        "print('EXE', sys.executable)"
    )
    assert 'VERSION_ID="12"' in output and "ID=debian" in output
    assert f"RELEASE {os.uname().release}" in output
    assert f"CWD {kernel.cwd}" in output
    assert "EXE /opt/distrokernels/bin/python" in output


async def test_sleep_is_interrupted_with_keyboardinterrupt_within_two_seconds(kernel):
    msg_id = kernel.client.execute("import time; time.sleep(30)")
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await kernel.manager.interrupt_kernel()
    while True:
        message = await kernel.client.get_iopub_msg(timeout=10)
        if message["msg_type"] == "error":
            break
    elapsed = time.monotonic() - started
    assert message["content"]["ename"] == "KeyboardInterrupt"
    assert elapsed < 2, f"interrupt took {elapsed:.2f} s"
    reply = await kernel.client.get_shell_msg(timeout=10)
    assert (reply["parent_header"]["msg_id"], reply["content"]["status"]) == (msg_id, "error")
    assert await kernel.run("print(1 + 1)") == "2\n"


async def test_interrupt_reaches_the_cells_subprocesses_as_a_local_interrupt_does(kernel):
    """jupyter_client interrupts a local kernel's whole process group: a shell command
    the cell runs gets the SIGINT too (here it records that it did)."""
    shell = "trap 'echo INT > got-sigint; exit 3' INT; sleep 30 & wait"
    kernel.client.execute(f"import subprocess; subprocess.run(['sh', '-c', {shell!r}])")
    await asyncio.sleep(1)
    await kernel.manager.interrupt_kernel()
    while (await kernel.client.get_iopub_msg(timeout=10))["msg_type"] != "error":
        pass
    assert (kernel.cwd / "got-sigint").read_text() == "INT\n"


async def test_restart_gives_a_fresh_container_in_the_same_working_folder(kernel, engine):
    await kernel.run("marker = 42")
    before = kernel.manager.provisioner.container_id
    await kernel.manager.restart_kernel()
    await kernel.client.wait_for_ready(timeout=60)
    after = kernel.manager.provisioner.container_id
    assert after and after != before
    output = await kernel.run("import os; print(os.getcwd()); print('marker' in globals())")
    assert output == f"{kernel.cwd}\nFalse\n"
    # The old container goes off the restart's path; this process waits for that at exit.
    await asyncio.to_thread(finish_removals)
    assert [c.id for c in kernel_containers(engine, kernel.manager.kernel_id)] == [after]
    # A process of one kernel (nbclient, a console): its final shutdown leaves none of the
    # kernel's containers, the one a restart just replaced included.
    await kernel.manager.restart_kernel()
    await kernel.manager.shutdown_kernel()
    assert kernel_containers(engine, kernel.manager.kernel_id) == []


async def test_file_written_in_working_folder_belongs_to_the_host_user(kernel):
    output = await kernel.run(
        "import os; open('made-in-kernel.txt', 'w').write('hi'); print(os.getuid(), os.getgid())"
    )
    made = kernel.cwd / "made-in-kernel.txt"
    assert made.read_text() == "hi"
    assert (made.stat().st_uid, made.stat().st_gid) == (os.getuid(), os.getgid())
    assert output.split() == [str(os.getuid()), str(os.getgid())]


async def test_shutdown_leaves_no_container_and_no_runtime_folder(
    installed_kernel, engine, tmp_path
):
    manager = AsyncKernelManager(kernel_name=installed_kernel)
    await manager.start_kernel(cwd=str(tmp_path))
    runtime_dir = Path(manager.provisioner.runtime_dir)
    assert runtime_dir.is_dir()
    assert (runtime_dir.stat().st_mode & 0o777) == 0o700
    assert (Path(manager.connection_file).stat().st_mode & 0o777) == 0o600
    assert len(kernel_containers(engine, manager.kernel_id)) == 1
    await manager.shutdown_kernel()
    assert kernel_containers(engine, manager.kernel_id) == []
    assert not runtime_dir.exists()


async def test_host_environment_does_not_leak_into_the_kernel(installed_kernel, tmp_path):
    os.environ["DK_TEST_SECRET_TOKEN"] = "do-not-leak"
    try:
        manager = AsyncKernelManager(kernel_name=installed_kernel)
        await manager.start_kernel(cwd=str(tmp_path))
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        output, _ = await execute(client, "import os; print(sorted(os.environ))")
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
    finally:
        del os.environ["DK_TEST_SECRET_TOKEN"]
    assert "DK_TEST_SECRET_TOKEN" not in output
    assert "JPY_PARENT_PID" not in output
    assert "PATH" in output  # the image's own environment, not the host's


async def test_container_exiting_during_start_fails_at_once_with_its_output(
    installed_kernel, engine, tmp_path
):
    def crash(spec):
        config = spec["metadata"]["kernel_provisioner"]["config"]
        python = config["container_argv"][0]
        config["container_argv"] = [python, "-c", "print('kernel exploded'); raise SystemExit(3)"]

    name = variant_kernelspec(installed_kernel, "dk-test-crashing", crash)
    manager = AsyncKernelManager(kernel_name=name)
    started = time.monotonic()
    with pytest.raises(KernelStartFailed) as caught:
        await manager.start_kernel(cwd=str(tmp_path))
    assert time.monotonic() - started < 15
    assert "exited with code 3" in str(caught.value)
    assert "kernel exploded" in str(caught.value)
    assert kernel_containers(engine, manager.kernel_id) == []


async def test_deleted_image_fails_start_with_a_reinstall_hint(installed_kernel, tmp_path):
    def gone(spec):
        config = spec["metadata"]["kernel_provisioner"]["config"]
        config["image"] = "distrokernels/deleted:0"
        config["image_id"] = ""

    name = variant_kernelspec(installed_kernel, "dk-test-no-image", gone)
    manager = AsyncKernelManager(kernel_name=name)
    with pytest.raises(KernelStartFailed) as caught:
        await manager.start_kernel(cwd=str(tmp_path))
    assert "distrokernels install debian:bookworm --replace" in str(caught.value)
