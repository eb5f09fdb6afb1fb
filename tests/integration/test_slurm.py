"""Distro kernels as Slurm jobs, on the real cluster dev/start-slurm runs on this machine
(a controller and two slurmd, node1 and node2), as an unprivileged user.

Each kernel here is a real job of that user, running the Debian 12 kernel image in the
node's runtime (rootless Podman, Charliecloud's ch-run), reached over TCP with CurveZMQ.
The user's jupyter_client script runs as that user (users.as_user) and reports what it
saw as JSON; the tests check it, and check Slurm and the runtime for what is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from distrokernels.slurm.node import archive_path

from .users import (
    as_user,
    give_subordinate_ids,
    install_checkout,
    make_user,
)

pytestmark = pytest.mark.slurm

USER = "dk-slurm"
OTHER = "dk-slurm2"
RUNTIMES = ("podman", "charliecloud")
REPO = Path(__file__).resolve().parents[2]

# Starts the kernel, reports its job, node, userland, folder and a file it wrote;
# interrupts time.sleep(30); restarts; shuts down. One JSON object on stdout.
LIFECYCLE = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from jupyter_client.manager import AsyncKernelManager

    async def run(client, code, timeout=60):
        out = []
        def hook(message):
            if message["msg_type"] == "stream":
                out.append(message["content"]["text"])
        reply = await client.execute_interactive(code, output_hook=hook, timeout=timeout)
        return reply["content"]["status"], "".join(out)

    async def main():
        seen = {}
        manager = AsyncKernelManager(kernel_name=sys.argv[1])
        await manager.start_kernel(cwd=sys.argv[2])
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=120)
        seen["job"] = manager.provisioner.container_id
        seen["node"] = manager.provisioner.engine_calls.backend.job.node
        status, out = await run(client, (
            "import os, platform; open('owned.txt', 'w').write('x'); "
            "print(open('/etc/os-release').read().split('VERSION_ID=')[1].split()[0]); "
            "print(os.getcwd()); print(os.getuid())"))
        seen["os"], seen["cwd"], seen["uid"] = out.split()
        # A hostile notebook: the private folder (every kernel's key, the staged images),
        # the user's kernelspecs and start-up files are not there to read or write.
        home = os.path.dirname(sys.argv[2])
        probes = [home + "/.local/share/distrokernels/slurm", home + "/.local/share/jupyter",
                  home + "/.bashrc", home + "/.ipython"]
        status, out = await run(client, (
            f"import os; print([p for p in {probes!r} if os.path.lexists(p)]); "
            f"print(sorted(os.listdir('/run/distrokernels')))"))
        seen["visible"], seen["io"] = out.strip().splitlines()
        seen["key_file"] = manager.connection_file
        # Links planted where the login side writes this kernel's next connection file:
        # the restart replaces them, and never writes through them.
        await run(client, (
            f"import os; os.symlink({home + '/.bashrc'!r}, '/run/distrokernels/kernel.json.part'); "
            f"os.replace('/run/distrokernels/kernel.json.part', '/run/distrokernels/kernel.json'); "
            f"os.symlink({home + '/.profile'!r}, '/run/distrokernels/kernel.json.part')"))
        client.execute("import time; time.sleep(30)")
        await asyncio.sleep(2)
        began = time.monotonic()
        await manager.interrupt_kernel()
        while True:
            reply = await client.get_shell_msg(timeout=20)
            if reply["msg_type"] == "execute_reply":
                break
        seen["interrupt"] = [reply["content"].get("ename"), time.monotonic() - began]
        await manager.restart_kernel()
        await client.wait_for_ready(timeout=120)
        seen["job_after_restart"] = manager.provisioner.container_id
        status, out = await run(client, "print(40 + 2)")
        seen["after_restart"] = out.strip()
        client.stop_channels()
        await manager.shutdown_kernel()
        print(json.dumps(seen))

    asyncio.run(main())
    """
)

# Starts a kernel and reports the error its start raised ('' for none).
START_FAILS = textwrap.dedent(
    """
    import asyncio, logging, sys
    from jupyter_client.manager import AsyncKernelManager
    logging.basicConfig(level=logging.INFO, format="LOG %(message)s")

    async def main():
        manager = AsyncKernelManager(kernel_name=sys.argv[1])
        try:
            await manager.start_kernel(cwd=sys.argv[2])
        except Exception as error:
            print("ERROR", error)
            return
        print("ERROR none")
        await manager.shutdown_kernel(now=True)

    asyncio.run(main())
    """
)


def _started(then: str) -> str:
    """A script that starts the kernel (argv: kernelspec, folder), waits until it is
    ready, then runs ``then`` (inside main, with ``manager`` and ``client``)."""
    head = textwrap.dedent(
        """
        import asyncio, sys, time
        from jupyter_client.manager import AsyncKernelManager

        async def main():
            manager = AsyncKernelManager(kernel_name=sys.argv[1])
            await manager.start_kernel(cwd=sys.argv[2])
            client = manager.client()
            client.start_channels()
            await client.wait_for_ready(timeout=120)
        """
    )
    return head + textwrap.indent(textwrap.dedent(then), "    ") + "\nasyncio.run(main())\n"


# Prints its job id, then waits to be killed (its owner's SIGKILL).
START_AND_WAIT = _started(
    """
    print(manager.provisioner.container_id, flush=True)
    await asyncio.sleep(600)
    """
)

# A kernel whose job hits its time limit: what the client was told.
TIME_LIMIT = _started(
    """
    deadline = time.monotonic() + 240
    while await manager.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(1)
    print("DEATH", manager.provisioner.death)
    client.stop_channels()
    await manager.shutdown_kernel(now=True)
    """
)

# VS Code's sequence: a TCP connection file on 127.0.0.1, kernel.json's argv as a child
# (the launcher), a client on that file; SIGINT to the launcher, then SIGTERM.
ARGV = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    from jupyter_client.blocking import BlockingKernelClient
    from jupyter_client.connect import write_connection_file
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(sys.argv[1])
    folder = sys.argv[2]
    path = os.path.join(folder, ".vscode-kernel.json")
    connection_file, _ = write_connection_file(path, ip="127.0.0.1", transport="tcp")
    argv = [arg.replace("{connection_file}", connection_file) for arg in spec.argv]
    launcher = subprocess.Popen(argv, cwd=folder, stderr=subprocess.PIPE, text=True)
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    out = []
    def hook(message):
        if message["msg_type"] == "stream":
            out.append(message["content"]["text"])
    client.execute_interactive("import os; print(os.getcwd(), os.getuid())", output_hook=hook,
                               timeout=60)
    seen = {"out": "".join(out).split()}
    client.execute("import time; time.sleep(30)")
    time.sleep(1.5)
    launcher.send_signal(signal.SIGINT)
    while (reply := client.get_shell_msg(timeout=20))["msg_type"] != "execute_reply":
        pass
    seen["interrupted"] = reply["content"].get("ename")
    client.stop_channels()
    launcher.send_signal(signal.SIGTERM)
    seen["exit"] = launcher.wait(timeout=60)
    seen["stderr"] = launcher.stderr.read()[-2000:]
    print(json.dumps(seen))
    """
)


def slurm(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def queued(job_id: str) -> bool:
    """Whether the job is still queued or running (a cancelled one may linger as CG)."""
    out = slurm("squeue", "--noheader", "--jobs", job_id, "--states=PENDING,RUNNING,SUSPENDED")
    return bool(out.strip())


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture(scope="module")
def cluster():
    """The test cluster: started by dev/test (dev/start-slurm), started here if not."""
    subprocess.run(["bash", str(REPO / "dev" / "start-slurm")], check=True, timeout=300)
    nodes = slurm("sinfo", "--noheader", "--Node", "--format=%N %t").split()
    assert "node1" in nodes and "node2" in nodes, nodes
    return nodes


@pytest.fixture(scope="module")
def slurm_user(cluster, installed_kernel):
    """An unprivileged user (docker group for `install`'s build, subordinate ids for
    rootless Podman on the nodes) with a Slurm kernelspec on each runtime, placed on
    node2 by its feature, and one on the partition a test fills."""
    account, work = make_user(USER, docker_group=True)
    give_subordinate_ids(account)
    install_checkout()
    for runtime in RUNTIMES:
        installed = as_user(
            account,
            "distrokernels", "install", "debian:bookworm", "--backend", "slurm",
            "--runtime", runtime, "--name", f"slurm-{runtime}", "--replace",
            "--constraint", "skylake", "--time", "30:00",
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr
    for name, extra in (
        ("slurm-single", ["--partition", "single"]),
        ("slurm-short", ["--time", "1"]),
    ):
        installed = as_user(
            account,
            "distrokernels", "install", "debian:bookworm", "--backend", "slurm",
            "--runtime", "charliecloud", "--name", name, "--replace", *extra,
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr
    yield account, work
    as_user(account, "scancel", f"--user={account.pw_uid}")


def _kernel_json(account, name: str) -> Path:
    return Path(account.pw_dir, ".local/share/jupyter/kernels", name, "kernel.json")


def _set_config(account, name: str, **values) -> None:
    path = _kernel_json(account, name)
    spec = json.loads(path.read_text())
    spec["metadata"]["kernel_provisioner"]["config"].update(values)
    path.write_text(json.dumps(spec))


def _user_podman_containers(account) -> str:
    run = as_user(account, "podman", "ps", "--all", "--quiet", "--filter", "name=dk-")
    return run.stdout.strip()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_slurm_kernel_runs_as_its_user_on_the_constrained_node_and_lives_like_a_local_one(
    slurm_user, runtime
):
    account, work = slurm_user
    (work / "owned.txt").unlink(missing_ok=True)
    run = as_user(account, "python", "-c", LIFECYCLE, f"slurm-{runtime}", str(work))
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["node"] == "node2"  # --constraint skylake: only node2 has it
    assert seen["visible"] == "[]", seen["visible"]
    assert seen["io"] == "['kernel.json']"  # its own connection file, and nothing else
    for planted in (".bashrc", ".profile"):  # the restart wrote through neither link
        assert "connection" not in Path(account.pw_dir, planted).read_text()
        assert '"key"' not in Path(account.pw_dir, planted).read_text()
    assert (seen["os"], seen["cwd"], seen["uid"]) == ('"12"', str(work), str(account.pw_uid))
    made = (work / "owned.txt").stat()
    assert (made.st_uid, made.st_gid) == (account.pw_uid, account.pw_gid)
    ename, seconds = seen["interrupt"]
    assert ename == "KeyboardInterrupt" and seconds < 2, seen["interrupt"]
    assert seen["job_after_restart"] == seen["job"]  # restarted in its allocation
    assert seen["after_restart"] == "42"
    assert wait_until(lambda: not queued(seen["job"]), 30), "the job outlived its shutdown"
    assert _user_podman_containers(account) == ""
    assert not Path(seen["key_file"]).exists()


@pytest.mark.parametrize("agent", ["0", "1"], ids=["in-process", "agent"])
def test_the_argv_launcher_runs_a_slurm_kernel_as_vs_code_starts_it(slurm_user, agent):
    account, work = slurm_user
    before = set(slurm("squeue", "-h", f"--user={account.pw_uid}", "-o", "%i").split())
    run = as_user(
        account, "python", "-c", ARGV, "slurm-charliecloud", str(work),
        env={"DISTROKERNELS_AGENT": agent},
    )  # fmt: skip
    as_user(account, "pkill", "-f", "distrokernels.agent")
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["out"] == [str(work), str(account.pw_uid)], seen
    assert seen["interrupted"] == "KeyboardInterrupt"
    assert seen["exit"] == 0, seen["stderr"]

    def no_new_job() -> bool:
        now = set(
            slurm("squeue", "-h", f"--user={account.pw_uid}", "-t", "PD,R", "-o", "%i").split()
        )
        return not now - before

    assert wait_until(no_new_job, 15), "the launcher's job outlived it"


def test_a_start_waiting_in_a_full_partition_says_why_and_its_job_is_cancelled_when_it_gives_up(
    slurm_user,
):
    account, work = slurm_user
    blocker = as_user(
        account, "sbatch", "--parsable", "--partition=single", f"--cpus-per-task={os.cpu_count()}",
        "--output=/dev/null", "--wrap=sleep 300",
    ).stdout.strip()  # fmt: skip
    try:
        assert wait_until(lambda: "RUNNING" in slurm("squeue", "-h", "-j", blocker, "-o", "%T"), 30)
        _set_config(account, "slurm-single", queue_timeout=8.0)
        run = as_user(account, "python", "-c", START_FAILS, "slurm-single", str(work))
        assert "waited 8 s in the queue (pending: Resources)" in run.stdout, run.stdout + run.stderr
        assert "slurm-single: pending: Resources" in run.stderr
        mine = slurm("squeue", "-h", f"--user={account.pw_uid}", "-o", "%i %j")
        assert "dk-slurm-single" not in mine, mine  # cancelled: no allocation held
    finally:
        subprocess.run(["scancel", blocker], check=False)


def test_a_job_killed_by_its_time_limit_gives_a_dead_kernel_with_that_reason(slurm_user):
    account, work = slurm_user
    run = as_user(account, "python", "-c", TIME_LIMIT, "slurm-short", str(work), timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "reached its time limit" in run.stdout and "TIMEOUT" in run.stdout, run.stdout


def _start_and_wait(account, work, name: str) -> tuple[subprocess.Popen, str]:
    environment = {
        "HOME": account.pw_dir, "PATH": "/tmp/dk-tester-venv/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8", "DISTROKERNELS_AGENT": "0",
        "XDG_RUNTIME_DIR": f"/run/user/{account.pw_uid}",
    }  # fmt: skip
    process = subprocess.Popen(
        ["runuser", "-u", account.pw_name, "--", "env", "-i"]
        + [f"{key}={value}" for key, value in environment.items()]
        + ["python", "-c", START_AND_WAIT, name, str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _kill_client(process: subprocess.Popen) -> None:
    """SIGKILL the user's Python (runuser's child), then reap runuser."""
    children = subprocess.run(
        ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
    ).stdout.split()
    assert children, "the client is not running"
    for pid in children:
        os.kill(int(pid), 9)
    process.wait(timeout=30)


def test_the_owners_sigkill_cancels_its_kernel_job_within_10_s(slurm_user):
    account, work = slurm_user
    process, job_id = _start_and_wait(account, work, "slurm-charliecloud")
    assert job_id and queued(job_id)
    _kill_client(process)
    assert wait_until(lambda: not queued(job_id), 10), "the job outlived its client by 10 s"


def test_gc_cancels_a_job_whose_owner_and_watchdog_both_died(slurm_user):
    account, work = slurm_user
    process, job_id = _start_and_wait(account, work, "slurm-charliecloud")
    watchdogs = subprocess.run(
        ["pgrep", "-u", account.pw_name, "-f", "distrokernels.watchdog"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for pid in watchdogs:
        os.kill(int(pid), 9)
    _kill_client(process)
    time.sleep(3)
    assert queued(job_id), "nothing but gc should have cancelled it"
    gc = as_user(account, "distrokernels", "gc")
    assert gc.returncode == 0, gc.stderr
    assert f"cancelled Slurm job {job_id}" in gc.stdout
    assert wait_until(lambda: not queued(job_id), 10)


def test_another_user_reads_no_key_in_scontrol_or_the_shared_folder(slurm_user):
    account, work = slurm_user
    other, _ = make_user(OTHER, docker_group=False)
    process, job_id = _start_and_wait(account, work, "slurm-charliecloud")
    try:
        folder = Path(account.pw_dir, ".local/share/distrokernels/slurm/kernels")
        (kernel,) = [
            path for path in folder.glob("*/running") if path.read_text().strip() == job_id
        ]
        kernel = kernel.parent
        key = json.loads((kernel / "io" / "kernel.json").read_text())["key"]
        assert len(key) > 16
        public = as_user(other, "scontrol", "--details", "show", "job", job_id)
        assert public.returncode == 0 and job_id in public.stdout, public.stderr
        assert key not in public.stdout
        everything = as_user(other, "squeue", "--all", "--Format=All").stdout
        assert key not in everything
        peek = as_user(other, "cat", str(kernel / "io" / "kernel.json"))
        assert peek.returncode != 0 and "Permission denied" in peek.stderr
        script = as_user(other, "scontrol", "write", "batch_script", job_id, "-")
        assert key not in script.stdout
    finally:
        _kill_client(process)
    assert wait_until(lambda: not queued(job_id), 10)


def test_doctor_checks_the_controller_and_each_slurm_kernels_image_and_runtime(slurm_user):
    account, _ = slurm_user
    doctor = as_user(account, "distrokernels", "doctor")
    lines = doctor.stdout.splitlines()
    assert any(line.startswith("ok    Slurm controller") and "node2" in line for line in lines)
    for runtime in RUNTIMES:
        for part in ("shared folder", "staged image", "runtime"):
            assert any(
                line.startswith(f"ok    Slurm kernel slurm-{runtime}: {part}") for line in lines
            ), doctor.stdout
    staged = Path(account.pw_dir, ".local/share/distrokernels/slurm/images")
    spec = json.loads(_kernel_json(account, "slurm-podman").read_text())
    archive = Path(archive_path(str(staged), spec["metadata"]["distrokernels"]["image_id"]))
    archive.rename(archive.with_suffix(".moved"))
    try:
        doctor = as_user(account, "distrokernels", "doctor")
        assert "FAIL  Slurm kernel slurm-podman: staged image" in doctor.stdout
        assert "--backend slurm --replace" in doctor.stdout
    finally:
        archive.with_suffix(".moved").rename(archive)
