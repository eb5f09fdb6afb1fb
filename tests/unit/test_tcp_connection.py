"""TCP kernels: the two sides of the connection info, the encryption rule (no engine)."""

import json

import pytest

from distrokernels import connection
from distrokernels.engine import KernelContainerSpec, container_ports, remote_address, task_ports
from distrokernels.engine.services import service_resources
from distrokernels.errors import KernelStartFailed, PlaintextRefused

CLIENT = {
    "key": b"secret-key",
    "signature_scheme": "hmac-sha256",
    "kernel_name": "swarm-12",
    "transport": "tcp",
    "ip": "127.0.0.1",
    "shell_port": 0,
    "iopub_port": 0,
    "stdin_port": 0,
    "control_port": 0,
    "hb_port": 0,
    "curve_publickey": "pub",
    "curve_secretkey": "sec",
}


def test_kernel_binds_every_interface_on_fixed_ports_with_the_same_keys():
    kernel = json.loads(connection.kernel_side(CLIENT))
    assert kernel["ip"] == "0.0.0.0"
    assert {name: kernel[name] for name in connection.KERNEL_PORTS} == connection.KERNEL_PORTS
    assert kernel["key"] == "secret-key"
    assert (kernel["curve_publickey"], kernel["curve_secretkey"]) == ("pub", "sec")


def test_jupyter_connects_to_the_node_and_its_published_ports():
    published = {port: 32000 + i for i, port in enumerate(connection.KERNEL_PORTS.values())}
    client = connection.client_side(CLIENT, "10.1.2.3", published)
    assert client["ip"] == "10.1.2.3"
    assert client["shell_port"] == published[connection.KERNEL_PORTS["shell_port"]]
    assert client["hb_port"] == published[connection.KERNEL_PORTS["hb_port"]]
    assert client["key"] == b"secret-key"


def test_a_port_the_engine_did_not_publish_is_a_start_failure():
    with pytest.raises(KernelStartFailed, match="did not publish"):
        connection.client_side(CLIENT, "10.1.2.3", {50001: 32000})


def test_kernel_command_reads_a_private_copy_of_the_delivered_file():
    command = connection.wrap_command(
        ["/opt/distrokernels/bin/python", "-m", "ipykernel_launcher", "-f", "/run/u/k.json"],
        "/run/u/k.json",
    )
    assert command[:2] == ["/bin/sh", "-c"]
    assert f"cp {connection.DELIVERED_FILE} {connection.RUNNING_FILE}" in command[2]
    assert command[2].endswith(f"-f {connection.RUNNING_FILE}")


@pytest.mark.parametrize(
    ("version", "curve"),
    [("7.4.0", True), ("7.10.1", True), ("7.3.0", False), ("6.29.5", False), ("", False)],
)
def test_curve_needs_ipykernel_7_4(version, curve):
    assert connection.supports_curve(version) is curve


def test_tcp_is_encrypted_when_the_kernel_can_and_plaintext_needs_an_opt_in():
    assert connection.choose_encryption("7.4.0", False, "disabled") is True
    with pytest.raises(PlaintextRefused, match="cannot encrypt"):
        connection.choose_encryption("6.29.5", False, "auto")
    assert connection.choose_encryption("6.29.5", True, "auto") is False
    with pytest.raises(PlaintextRefused, match="required"):
        connection.choose_encryption("6.29.5", True, "required")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("tcp://10.0.0.5:2376", "10.0.0.5"),
        ("ssh://me@build.example:22", "build.example"),
        ("unix:///var/run/docker.sock", ""),
        ("unix:///run/dk-remote.sock", ""),
    ],
)
def test_only_network_engines_are_remote(url, host):
    assert remote_address(url) == host


def test_empty_url_follows_docker_host(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.0.2.7:2375")
    assert remote_address("") == "192.0.2.7"
    monkeypatch.delenv("DOCKER_HOST")
    assert remote_address("") == ""


@pytest.mark.parametrize(("text", "size"), [("2g", 2 << 30), ("512m", 512 << 20), ("1000", 1000)])
def test_memory_sizes_read_as_docker_reads_them(text, size):
    spec = KernelContainerSpec("i", [], "1000:1000", "/w", {}, [], {}, memory=text)
    assert service_resources(spec)["Limits"]["MemoryBytes"] == size


# Seen on Engine 20.10 once its IPv4 and IPv6 port allocators had drifted apart.
TASK_PORT_STATUS = {
    "Ports": [
        {"Protocol": "tcp", "TargetPort": 50001, "PublishedPort": 33071, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 50001, "PublishedPort": 33069, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 50002, "PublishedPort": 33070, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 50002, "PublishedPort": 33068, "PublishMode": "host"},
    ]
}
CONTAINER_NETWORK = {
    "Ports": {
        "50001/tcp": [
            {"HostIp": "::", "HostPort": "33069"},
            {"HostIp": "0.0.0.0", "HostPort": "33071"},
        ],
        "50002/tcp": [
            {"HostIp": "0.0.0.0", "HostPort": "33070"},
            {"HostIp": "::", "HostPort": "33068"},
        ],
        "50003/tcp": None,
    }
}


def test_a_tasks_ipv4_ports_are_the_first_of_each_pair():
    assert task_ports(TASK_PORT_STATUS) == {50001: 33071, 50002: 33070}


def test_a_containers_ipv4_ports_are_chosen_whatever_the_order():
    assert container_ports(CONTAINER_NETWORK) == {50001: 33071, 50002: 33070}
