"""A second Docker engine, reached over TCP, stands in for a remote machine.

The notebook's folder does not exist there, so the working folder is a named volume
(distrokernels-work-<user>, at /work) that outlives kernels, and Jupyter reaches the
kernel over TCP, encrypted with CurveZMQ, at the engine's address.
"""

import getpass
import os
import subprocess
import sys

import pytest

from distrokernels.errors import KernelStartFailed

from .conftest import (
    execute,
    interrupted,
    kernel_containers,
    kill_with_its_watchdog,
    run_cli,
    running,
)
from .nodes import nodes
from .test_gc import OWNER

NAME = "remote-debian-12"


@pytest.fixture(scope="module")
def remote(engine, base_image):
    """A fresh engine with only the base image: the install builds there for real."""
    with nodes(engine, ["remote"]) as (node,):
        engine.copy_image_to(node.engine, base_image)
        result = run_cli("install", base_image, "--docker-host", node.url, "--name", NAME)
        assert result.returncode == 0, result.stderr
        yield node


async def test_remote_kernel_runs_over_encrypted_tcp_in_a_volume_that_outlives_it(
    remote, engine, tmp_path
):
    async with running(NAME, tmp_path) as (manager, client):
        info = manager.get_connection_info()
        assert (info["transport"], info["ip"]) == ("tcp", remote.address)
        assert info["curve_publickey"]
        assert len(kernel_containers(remote.engine, manager.kernel_id)) == 1
        assert kernel_containers(engine, manager.kernel_id) == []  # not on this engine

        output, _ = await execute(
            client,
            "import os; open('kept.txt', 'w').write('kept'); print(os.getcwd(), os.getuid())",
        )
        assert output.split() == ["/work", str(os.getuid())]
        assert await interrupted(manager, client) == "KeyboardInterrupt"

        await manager.restart_kernel()
        await client.wait_for_ready(timeout=60)
        output, _ = await execute(client, "print(open('kept.txt').read())")
        assert output.strip() == "kept"
    assert kernel_containers(remote.engine, manager.kernel_id) == []
    volume = remote.engine.api.inspect_volume(f"distrokernels-work-{getpass.getuser()}")
    assert volume["Labels"] == {"distrokernels.volume": "1"}


def test_gc_collects_orphans_on_the_engines_kernelspecs_name(remote, tmp_path):
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, NAME, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    orphan_id = owner.stdout.readline().strip()
    assert len(kernel_containers(remote.engine, orphan_id)) == 1
    kill_with_its_watchdog(owner)

    result = run_cli("gc")
    assert result.returncode == 0, result.stderr
    assert orphan_id in result.stdout
    assert kernel_containers(remote.engine, orphan_id) == []


def test_swarm_install_on_an_engine_that_is_no_manager_says_how_to_make_one(remote, base_image):
    result = run_cli(
        "install", base_image, "--docker-host", remote.url, "--backend", "swarm", "--name", "x"
    )
    assert result.returncode == 2
    assert "not" in result.stderr and "docker swarm init" in result.stderr


async def test_swarm_kernel_on_an_engine_that_left_its_swarm_fails_at_once(remote, tmp_path):
    with pytest.raises(KernelStartFailed, match="not a swarm manager") as failure:
        async with running(NAME, tmp_path, backend="swarm"):
            pass
    assert "docker swarm init" in failure.value.fix
