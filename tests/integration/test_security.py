"""The container is a boundary by default; each option that loosens it does what it says."""

import json
import os
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

from .conftest import BASE, run_cli, run_in_new_kernel

pytestmark = pytest.mark.security


def host_config(engine, manager) -> dict:
    return engine.api.inspect_container(manager.provisioner.container_id)


async def test_default_kernel_runs_unprivileged_with_only_two_writable_mounts(kernel, engine):
    data = host_config(engine, kernel.manager)
    config, host = data["Config"], data["HostConfig"]
    assert config["User"] == f"{os.getuid()}:{os.getgid()}"
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 1024
    assert host["Init"] is True
    runtime_dir = kernel.manager.provisioner.runtime_dir
    assert sorted(host["Binds"]) == sorted(
        [f"{runtime_dir}:{runtime_dir}:rw", f"{kernel.cwd}:{kernel.cwd}:rw"]
    )
    assert not any("docker.sock" in mount["Source"] for mount in data["Mounts"])
    assert not host["Privileged"]


async def test_signing_key_is_in_neither_environment_nor_logs(kernel, engine):
    key = kernel.manager.session.key.decode()
    assert len(key) > 16
    await kernel.run("print('some output')")
    data = host_config(engine, kernel.manager)
    assert not any(key in entry for entry in data["Config"]["Env"])
    assert key not in " ".join(data["Config"]["Cmd"])
    assert key not in engine.container_logs(kernel.manager.provisioner.container_id, tail=1000)
    output = await kernel.run(f"import os; print(any({key!r} in v for v in os.environ.values()))")
    assert output.strip() == "False"


async def test_pids_limit_stops_a_fork_bomb(installed_kernel, tmp_path):
    result = run_cli("install", BASE, "--name", "dk-test-pids", "--pids-limit", "32", "--replace")
    assert result.returncode == 0, result.stderr
    try:
        output, _, _ = await run_in_new_kernel(
            "dk-test-pids",
            tmp_path,
            "import subprocess\n"
            "children = []\n"
            "try:\n"
            "    for _ in range(100):\n"
            "        children.append(subprocess.Popen(['sleep', '30']))\n"
            "except OSError as error:\n"
            "    print('stopped after', len(children), type(error).__name__)\n"
            "for child in children:\n"
            "    child.kill()\n",
        )
    finally:
        run_cli("remove", "dk-test-pids")
    assert output.startswith("stopped after"), output
    assert int(output.split()[2]) < 32


async def test_each_loosening_option_reaches_the_container(installed_kernel, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("mounted")
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli(
        "install", BASE, "--name", "dk-test-loose", "--replace",
        "--memory", "256m", "--cpus", "0.5", "--pids-limit", "64", "--cap-add", "CHOWN",
        "--run-as-root", "--allow-new-privileges", "--network", "none",
        "--mount", f"{shared}:/data",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    listing = [line for line in run_cli("list").stdout.splitlines() if "dk-test-loose" in line]
    assert "memory=256m" in listing[0] and "cpus=0.5" in listing[0]
    try:
        output, _, data = await run_in_new_kernel(
            "dk-test-loose",
            work,
            "import os\nprint(os.getuid(), open('/data/data.txt').read())\n"
            "try:\n    open('/data/new.txt', 'w')\n"
            "except OSError as e:\n    print(type(e).__name__)",
        )
    finally:
        run_cli("remove", "dk-test-loose")
    host = data["HostConfig"]
    assert host["Memory"] == 256 * 2**20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 64
    assert host["CapAdd"] == ["CHOWN"] and host["CapDrop"] == ["ALL"]
    assert not host["SecurityOpt"]
    assert host["NetworkMode"] == "none"
    assert data["Config"]["User"] == "0:0"
    assert output.split() == ["0", "mounted", "OSError"]  # read-only unless :rw


@pytest.mark.parametrize(
    "args",
    [
        ["--mount", "/var/run/docker.sock"],
        ["--mount", "/run/docker.sock:/var/run/docker.sock:rw"],
        ["--cap-add", "SYS_ADMIN; id"],
        ["--pids-limit", "1"],
        ["--cpus", "-1"],
        ["--name", "x" * 300],
        ["--display-name", "y" * 1000],
        ["--display-name", "two\nlines"],
    ],
    ids=lambda args: " ".join(args)[:40],
)
def test_unsafe_or_malformed_install_options_are_refused(args):
    result = run_cli("install", BASE, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("distrokernels: error:")


def test_very_long_image_reference_is_refused_without_touching_the_engine():
    result = run_cli("install", "a" * 5000, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.returncode == 2


def test_kernelspec_written_is_valid_json_whatever_the_display_name(installed_kernel):
    odd = 'Py "3" $(rm -rf ~) `id` \\ end'
    result = run_cli("install", BASE, "--name", "dk-test-odd", "--display-name", odd, "--replace")
    assert result.returncode == 0, result.stderr
    try:
        folder = [line for line in run_cli("list", "--json").stdout.splitlines()]
        spec = next(r for r in json.loads("\n".join(folder)) if r["name"] == "dk-test-odd")
        assert spec["display_name"] == odd
        assert json.loads(Path(spec["path"], "kernel.json").read_text())["display_name"] == odd
    finally:
        run_cli("remove", "dk-test-odd")


@pytest.mark.parametrize(("policy", "encrypted"), [("disabled", False), ("auto", True)])
async def test_ipc_kernel_follows_jupyters_transport_encryption_policy(
    installed_kernel, tmp_path, policy, encrypted
):
    manager = AsyncKernelManager(kernel_name=installed_kernel, transport_encryption=policy)
    await manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        on_disk = json.loads(Path(manager.connection_file).read_text())
        assert ("curve_publickey" in on_disk) is encrypted
        assert (await client.execute_interactive("1", timeout=30))["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
