"""A two-node swarm of Docker-in-Docker engines: kernels on a worker, Jupyter here.

The manager runs Debian's registry; `install --push` puts the image there and the
worker pulls it by digest when its first kernel lands. The working folder is a
folder every node mounts at the same path, as shared home directories are.
"""

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from distrokernels.errors import KernelStartFailed

from .conftest import execute, interrupted, kernel_services, run_cli, running
from .nodes import Node, nodes, run_registry

NAME = "cluster-debian-12"


@dataclass
class Cluster:
    manager: Node
    worker: Node
    shared: Path
    pushed: str


@pytest.fixture(scope="module")
def cluster(engine, base_image, tmp_path_factory):
    shared = tmp_path_factory.mktemp("shared-home")
    with nodes(engine, ["manager", "worker"], shared=[str(shared)]) as (manager, worker):
        manager.engine.client.swarm.init(
            advertise_addr=manager.address, listen_addr=f"{manager.address}:2377"
        )
        token = manager.engine.client.swarm.attrs["JoinTokens"]["Worker"]
        worker.engine.client.swarm.join(
            remote_addrs=[f"{manager.address}:2377"],
            join_token=token,
            advertise_addr=worker.address,
            listen_addr=f"{worker.address}:2377",
        )
        registry = run_registry(engine, manager)
        wait_for_registry(registry)
        engine.copy_image_to(manager.engine, base_image)
        result = run_cli(
            "install", base_image, "--docker-host", manager.url, "--backend", "swarm",
            "--constraint", "node.role==worker", "--push", f"{registry}/kernels", "--name", NAME,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (listed,) = [k for k in json.loads(run_cli("list", "--json").stdout) if k["name"] == NAME]
        assert listed["image_in_registry"].startswith(f"{registry}/kernels@sha256:")
        assert listed["runs_on"] == f"swarm {manager.url}"
        yield Cluster(manager, worker, shared, f"{registry}/kernels")


def wait_for_registry(address: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


async def test_kernel_constrained_to_the_worker_runs_there_and_jupyter_reaches_it(cluster):
    manager_engine, worker_engine = cluster.manager.engine, cluster.worker.engine
    assert worker_engine.find_image(f"{cluster.pushed}:latest") is None  # nothing copied there
    async with running(NAME, cluster.shared, ready_timeout=120) as (kernel, client):
        (service,) = kernel_services(manager_engine, kernel.kernel_id)
        spec = manager_engine.api.inspect_service(service.id)["Spec"]
        image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        assert image.startswith(f"{cluster.pushed}@sha256:")  # the pushed digest
        (task,) = manager_engine.api.tasks(filters={"service": service.id})
        assert task["NodeID"] == worker_engine.swarm_node_id()
        assert worker_engine.find_image(image) is not None  # the worker pulled it
        info = kernel.get_connection_info()
        assert (info["ip"], info["transport"]) == (cluster.worker.address, "tcp")
        assert info["curve_publickey"]

        output, _ = await execute(
            client,
            "import os, socket; open('from-worker.txt', 'w').write(socket.gethostname()); "
            "print(os.getcwd(), os.getuid())",
        )
        assert output.split() == [str(cluster.shared), str(os.getuid())]
        made = cluster.shared / "from-worker.txt"
        assert made.stat().st_uid == os.getuid()
        # The worker's engine is out of the provisioner's reach: the interrupt travels
        # as a message on the (encrypted) control channel.
        assert await interrupted(kernel, client) == "KeyboardInterrupt"

        shell_port = kernel.shell_port
        await kernel.restart_kernel()
        await client.wait_for_ready(timeout=120)
        assert (kernel.get_connection_info()["ip"], kernel.shell_port) == (
            cluster.worker.address,
            shell_port,
        )
        output, _ = await execute(client, "print(open('from-worker.txt').read() != '')")
        assert output.strip() == "True"
    assert kernel_services(manager_engine, kernel.kernel_id) == []


async def test_without_a_registry_copy_puts_the_same_image_id_on_the_worker(cluster):
    result = run_cli(
        "install", "debian:bookworm", "--docker-host", cluster.manager.url, "--backend", "swarm",
        "--constraint", "node.role==worker", "--name", "cluster-copied",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec = KernelSpecManager().get_kernel_spec("cluster-copied")
    image_id = spec.metadata["kernel_provisioner"]["config"]["image_id"]
    cluster.worker.engine.api.remove_image(image_id, force=True)  # whatever earlier tests left

    with pytest.raises(KernelStartFailed, match="has no image on node") as failure:
        async with running("cluster-copied", cluster.shared):
            pass
    assert cluster.worker.address in str(failure.value)

    copied = run_cli("copy", "cluster-copied", "--to", cluster.worker.url)
    assert copied.returncode == 0, copied.stderr
    assert cluster.worker.engine.find_image(image_id) is not None
    async with running("cluster-copied", cluster.shared, ready_timeout=120) as (kernel, client):
        output, _ = await execute(client, "print(6 * 7)")
        assert output.strip() == "42"
        assert kernel.get_connection_info()["ip"] == cluster.worker.address
