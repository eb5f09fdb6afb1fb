"""Kernels as Docker Swarm services on a real single-node swarm (advertised on 127.0.0.1).

The swarm path is the cluster path: TCP instead of IPC, the connection file as a swarm
secret, CurveZMQ on the wire, placement by the scheduler. What a user sees must not
change: the notebook's folder, their uid, interrupt, restart, nothing left behind.
"""

import asyncio
import os
import subprocess
import sys
import time

import pytest
from jupyter_client.multikernelmanager import AsyncMultiKernelManager

from distrokernels.connection import heartbeat_answers
from distrokernels.errors import KernelStartFailed

from .conftest import (
    execute,
    install_swarm_kernel,
    interrupted,
    kernel_services,
    kill_with_its_watchdog,
    run_cli,
    running,
)
from .test_gc import OWNER
from .test_load import CONCURRENT, start_run_stop
from .test_other_clients import Launched, owned_by

NAME = "swarm-debian-12"


@pytest.fixture(scope="module")
def swarm_kernel(swarm, installed_kernel) -> str:
    install_swarm_kernel(NAME)
    return NAME


async def wait_gone(engine, kernel_id: str, timeout: float = 30) -> None:
    """The service at once; its task's container once the swarm has stopped it."""
    assert kernel_services(engine, kernel_id) == []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [
            c
            for c in engine.api.containers(all=True, filters={"label": "com.docker.swarm.task"})
            if kernel_id in str(c.get("Labels"))
        ]:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the task container of {kernel_id} is still there")


async def test_swarm_kernel_runs_in_the_notebook_folder_interrupts_restarts_and_leaves_nothing(
    swarm, swarm_kernel, tmp_path
):
    async with running(swarm_kernel, tmp_path) as (manager, client):
        info = manager.get_connection_info()
        assert info["transport"] == "tcp" and info["curve_publickey"]
        (service,) = kernel_services(swarm, manager.kernel_id)
        spec = swarm.api.inspect_service(service.id)["Spec"]
        assert spec["Mode"] == {"Replicated": {"Replicas": 1}}
        assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "none"
        assert spec["Labels"]["distrokernels.kernelspec"] == swarm_kernel
        # The key never travels in the service's spec: only as a secret.
        assert manager.session.key.decode() not in str(spec)

        output, _ = await execute(
            client,
            "import os; open('from-swarm.txt', 'w').write('x'); "
            "print(os.getcwd(), os.getuid(), os.getgid())",
        )
        assert output.split() == [str(tmp_path), str(os.getuid()), str(os.getgid())]
        made = (tmp_path / "from-swarm.txt").stat()
        assert (made.st_uid, made.st_gid) == (os.getuid(), os.getgid())
        assert await interrupted(manager, client) == "KeyboardInterrupt"

        shell_port = manager.shell_port
        await manager.restart_kernel()
        await client.wait_for_ready(timeout=60)
        assert manager.shell_port == shell_port  # connected clients keep working
        output, _ = await execute(client, "import os; print(os.getcwd())")
        assert output.strip() == str(tmp_path)
        assert len(kernel_services(swarm, manager.kernel_id)) == 1
    await wait_gone(swarm, manager.kernel_id)
    assert swarm.api.secrets(filters={"label": "distrokernels.kernel-id"}) == []


async def test_swarm_kernel_traffic_needs_the_curve_keys(swarm, swarm_kernel, tmp_path):
    async with running(swarm_kernel, tmp_path) as (manager, _):
        info = manager.get_connection_info()
        plaintext = {key: value for key, value in info.items() if not key.startswith("curve")}
        assert await heartbeat_answers(info, timeout=3)
        assert not await heartbeat_answers(plaintext, timeout=3)  # no keys, no answer


async def test_constraints_matching_no_node_fail_fast_with_the_reason(
    swarm, swarm_kernel, tmp_path
):
    started_at = time.monotonic()
    with pytest.raises(KernelStartFailed) as failure:
        async with running(
            swarm_kernel, tmp_path, constraints=["node.labels.gpu==1"], launch_timeout=300
        ):
            pass
    assert time.monotonic() - started_at < 60  # the scheduler's answer, not the timeout
    assert "no suitable node" in str(failure.value)
    assert "node.labels.gpu==1" in failure.value.fix
    assert swarm.kernel_services() == []


async def test_image_missing_on_the_node_fails_fast_naming_the_fix(swarm, swarm_kernel, tmp_path):
    with pytest.raises(KernelStartFailed) as failure:
        async with running(
            swarm_kernel, tmp_path, image_id="sha256:" + "0" * 64, launch_timeout=300
        ):
            pass
    assert "has no image on node" in str(failure.value)
    assert "--push" in failure.value.fix
    assert swarm.kernel_services() == []


def test_install_records_backend_and_constraints(swarm, installed_kernel):
    config = install_swarm_kernel("swarm-placed", "--constraint", "node.role==manager")
    assert config["backend"] == "swarm"
    assert config["constraints"] == ["node.role==manager"]
    assert run_cli("remove", "swarm-placed").returncode == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--constraint", "node.role==manager"], "add --backend swarm"),
        (["--backend", "swarm", "--constraint", "gpu"], "is not a placement constraint"),
        (["--backend", "swarm", "--push", "Bad Name"], "image reference"),
    ],
)
def test_install_refuses_swarm_options_that_cannot_work(installed_kernel, options, message):
    result = run_cli("install", "debian:bookworm", "--name", "never", *options)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_gc_removes_the_service_and_secret_of_a_killed_owner(swarm, swarm_kernel, tmp_path):
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, swarm_kernel, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    orphan_id = owner.stdout.readline().strip()
    assert len(kernel_services(swarm, orphan_id)) == 1
    kill_with_its_watchdog(owner)

    result = run_cli("gc")
    assert result.returncode == 0, result.stderr
    assert orphan_id in result.stdout
    assert kernel_services(swarm, orphan_id) == []
    assert swarm.api.secrets(filters={"label": f"distrokernels.kernel-id={orphan_id}"}) == []


def test_old_ipykernel_over_tcp_needs_an_explicit_plaintext_opt_in(swarm, suite_kernels):
    """Debian 11's Python 3.9 gets ipykernel 6.31, which cannot use CurveZMQ."""
    refused = run_cli("install", "debian:bullseye", "--backend", "swarm", "--name", "swarm-11")
    assert refused.returncode == 2
    assert "cannot encrypt" in refused.stderr and "--plaintext-tcp" in refused.stderr

    accepted = run_cli(
        "install", "debian:bullseye", "--backend", "swarm", "--name", "swarm-11", "--plaintext-tcp"
    )
    assert accepted.returncode == 0, accepted.stderr


async def test_plaintext_kernel_runs_when_the_kernelspec_opted_in(swarm, suite_kernels, tmp_path):
    install_swarm_kernel("swarm-11", "--plaintext-tcp", base="debian:bullseye")
    async with running("swarm-11", tmp_path) as (manager, client):
        assert "curve_publickey" not in manager.get_connection_info()
        output, _ = await execute(client, "import sys; print(sys.version_info[:2])")
        assert output.strip() == "(3, 9)"


@pytest.mark.load
async def test_twenty_swarm_kernels_at_once_all_start_execute_and_leave_nothing(
    swarm, swarm_kernel, tmp_path
):
    """Many tasks at once on one node: ports of both address families, secrets mounted
    side by side, tasks seen in every state."""
    manager = AsyncMultiKernelManager()
    results = await asyncio.gather(
        *(
            start_run_stop(manager, swarm_kernel, str(tmp_path), f"print({n} * 2)")
            for n in range(CONCURRENT)
        )
    )
    for n, (_, output, reply) in enumerate(results):
        assert reply["status"] == "ok" and output == f"{n * 2}\n"
    assert len(swarm.kernel_services()) == CONCURRENT
    await manager.shutdown_all()
    assert swarm.kernel_services() == []
    assert swarm.api.secrets(filters={"label": "distrokernels.kernel-id"}) == []


def test_a_client_running_argv_reaches_a_swarm_kernel_over_curve_through_the_bridge(
    swarm, swarm_kernel, engine, tmp_path
):
    """VS Code's way onto a swarm: the launcher's bridge speaks Curve to the node."""
    kernel = Launched(swarm_kernel, tmp_path, tmp_path)
    try:
        kernel.ready()
        assert len(owned_by(engine.kernel_services(), kernel.process.pid)) == 1
        assert kernel.run("import os; print(os.getcwd())") == f"{tmp_path}\n"
        kernel.client.shutdown()
        assert kernel.process.wait(timeout=60) == 0
        assert owned_by(engine.kernel_services(), kernel.process.pid) == []
    finally:
        kernel.close()
