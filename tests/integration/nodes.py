"""Docker engines in containers (Docker-in-Docker): remote engines and swarm nodes.

Each node is a container of a Debian image with docker.io (and Debian's registry)
installed, since nothing can be pulled here. The nodes sit on a bridge network the
test creates; the tests reach their engines at tcp://<node address>:2375, which is
never an address outside this machine.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from distrokernels.engine import Engine
from distrokernels.errors import EngineUnavailable

NODE_IMAGE = "distrokernels-test/node:bookworm"
NODE_DOCKERFILE = """\
FROM debian:bookworm
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
    docker.io docker-registry iptables ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
VOLUME /var/lib/docker
"""
# --privileged asks for every capability, and this machine's root lacks
# CAP_SYS_RESOURCE: the runtime refuses. All the others are enough for dockerd.
NODE_CAPS = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
    "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND",
    "AUDIT_READ",
]  # fmt: skip
REGISTRY_CONFIG = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: :5000
"""


class Node:
    def __init__(self, name: str, address: str, container_id: str) -> None:
        self.name = name
        self.address = address
        self.container_id = container_id
        self.url = f"tcp://{address}:2375"
        self.engine = _wait_for_engine(self.url)


def node_image(engine: Engine) -> str:
    """Built once per engine (about a minute): Debian 12 with docker.io."""
    if engine.find_image(NODE_IMAGE) is None:
        with tempfile.TemporaryDirectory() as context:
            (Path(context) / "Dockerfile").write_text(NODE_DOCKERFILE)
            engine.build(Path(context), NODE_IMAGE, progress=lambda line: None)
    return NODE_IMAGE


@contextmanager
def nodes(engine: Engine, names: list[str], shared: list[str] = ()):
    """Start one engine per name on a fresh network; remove everything afterwards.

    ``shared`` folders are bind-mounted into every node at the same path, as shared
    home directories are on a real cluster.
    """
    image = node_image(engine)
    network = f"dk-test-{secrets.token_hex(3)}"
    engine.api.create_network(network, driver="bridge", labels={"distrokernels.test": "1"})
    subnet = engine.api.inspect_network(network)["IPAM"]["Config"][0]["Subnet"]
    started: list[str] = []
    try:
        result = []
        for name in names:
            container = engine.api.create_container(
                image,
                command=[
                    "dockerd",
                    "--host=unix:///var/run/docker.sock",
                    "--host=tcp://0.0.0.0:2375",
                    "--tls=false",
                    f"--insecure-registry={subnet}",
                ],
                name=f"{network}-{name}",
                hostname=name,
                labels={"distrokernels.test": "1"},
                host_config=engine.api.create_host_config(
                    cap_add=NODE_CAPS,
                    security_opt=["seccomp=unconfined", "apparmor=unconfined"],
                    binds=["/sys/fs/cgroup:/sys/fs/cgroup:rw"]
                    + [f"{folder}:{folder}:rw" for folder in shared],
                    network_mode=network,
                ),
            )
            started.append(container["Id"])
            engine.api.start(container["Id"])
            address = engine.api.inspect_container(container["Id"])["NetworkSettings"]["Networks"][
                network
            ]["IPAddress"]
            result.append((name, address, container["Id"]))
        result = [Node(*node) for node in result]
        yield result
    finally:
        for container_id in started:
            engine.api.remove_container(container_id, force=True, v=True)
        engine.api.remove_network(network)


def _wait_for_engine(url: str, timeout: float = 90) -> Engine:
    """dockerd in a fresh container takes a few seconds to listen."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Engine.connect(url)
        except EngineUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def run_registry(engine: Engine, node: Node) -> str:
    """Debian's registry on ``node``, port 5000; returns its address for pushes."""
    script = (
        f"printf '%s' '{REGISTRY_CONFIG}' > /etc/registry.yml && "
        "exec docker-registry serve /etc/registry.yml"
    )
    exec_id = engine.api.exec_create(node.container_id, ["sh", "-c", script])["Id"]
    engine.api.exec_start(exec_id, detach=True)
    return f"{node.address}:5000"
