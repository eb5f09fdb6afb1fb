"""The container is a boundary by default; each option that loosens it does what it says."""

import json
import os
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

from .conftest import BASE, applies_limits, run_cli, run_in_new_kernel

pytestmark = pytest.mark.security


def host_config(engine, manager) -> dict:
    return engine.api.inspect_container(manager.provisioner.container_id)


async def test_default_kernel_runs_unprivileged_with_only_two_writable_mounts(kernel, engine):
    data = host_config(engine, kernel.manager)
    config, host = data["Config"], data["HostConfig"]
    assert config["User"] == f"{os.getuid()}:{os.getgid()}"
    # What the kernel's process has, as the kernel sees it: no capability, even as
    # setuid (bounding set empty), and no way to gain privileges.
    status = await kernel.run("print(open('/proc/self/status').read())")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapEff"] == fields["CapBnd"] == fields["CapPrm"] == "0" * 16
    assert fields["NoNewPrivs"] == "1"
    assert not host["CapAdd"]
    if applies_limits(engine, "pids"):
        assert host["PidsLimit"] == 1024
    assert host["Init"] is True
    runtime_dir = kernel.manager.provisioner.runtime_dir
    binds = [m for m in data["Mounts"] if m["Type"] == "bind"]
    assert sorted((m["Source"], m["Destination"], m["RW"]) for m in binds) == sorted(
        [
            (f"{runtime_dir}/io", "/run/distrokernels", True),
            (str(kernel.cwd), str(kernel.cwd), True),
        ]
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


async def test_pids_limit_stops_a_fork_bomb(installed_kernel, engine, tmp_path):
    result = run_cli("install", BASE, "--name", "dk-test-pids", "--pids-limit", "32", "--replace")
    assert result.returncode == 0, result.stderr
    if not applies_limits(engine, "pids"):
        run_cli("remove", "dk-test-pids")
        assert "cannot apply pids_limit=32" in result.stderr  # the user is told
        pytest.skip("no pids cgroup controller delegated to rootless Podman on this machine")
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


async def test_each_loosening_option_reaches_the_container(installed_kernel, engine, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("mounted")
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli(
        "install", BASE, "--name", "dk-test-loose", "--replace",
        "--memory", "256m", "--cpus", "0.5", "--pids-limit", "64", "--cap-add", "CHOWN",
        "--allow-new-privileges", "--network", "none",
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
            "except OSError as e:\n    print(type(e).__name__)\n"
            "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status') if ':\\t' in l)\n"
            "print(status['CapBnd'].strip(), status['NoNewPrivs'].strip())",
        )
    finally:
        run_cli("remove", "dk-test-loose")
    host = data["HostConfig"]
    if applies_limits(engine, "memory", "cpu", "pids"):
        assert host["Memory"] == 256 * 2**20
        assert host["NanoCpus"] == 500_000_000
        assert host["PidsLimit"] == 64
    else:
        assert "cannot apply" in result.stderr and "delegated to you" in result.stderr
    assert host["NetworkMode"] == "none"
    assert data["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    # Read-only unless :rw; CHOWN (bit 0) the only capability it can have (whether a
    # non-root process holds it in its effective set is the engine's choice); new
    # privileges allowed.
    assert output.split() == [str(os.getuid()), "mounted", "OSError", f"{1:016x}", "0"]


@pytest.mark.parametrize(
    "args",
    [
        ["--mount", "/var/run/docker.sock"],
        ["--mount", "/run/docker.sock:/var/run/docker.sock:rw"],
        ["--cap-add", "SYS_ADMIN; id"],
        ["--pids-limit", "1"],
        ["--cpus", "-1"],
        ["--cpus", "nan"],
        ["--cpus", "inf"],
        ["--cpus", "1e9"],
        ["--memory", "1b"],
        ["--memory", "99999999999g"],
        ["--pids-limit", "99999999999999"],
        ["--mount", "/etc:/hostetc:rw"],
        ["--mount", "/:/host:rw"],
        ["--name", ""],
        ["--run-as-root"],
        ["--name", "x" * 300],
        ["--display-name", "y" * 1000],
        ["--display-name", "two\nlines"],
    ],
    ids=lambda args: " ".join(args)[:40],
)
def test_unsafe_or_malformed_install_options_are_refused(args):
    folders = set(kernelspec_folders())
    result = run_cli("install", BASE, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("distrokernels: error:")
    assert len(result.stderr.strip().splitlines()) == 1  # one line, with its fix
    assert set(kernelspec_folders()) == folders  # nothing written


def kernelspec_folders() -> list[Path]:
    return list(Path(os.environ["JUPYTER_DATA_DIR"], "kernels").glob("*"))


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
