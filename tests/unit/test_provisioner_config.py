"""The kernelspec config, checked by DistroProvisioner's traits (no engine).

`distrokernels install`, a provisioner-aware Jupyter and the argv launcher all read
``metadata.kernel_provisioner.config`` through these traits, so a hand-edited
kernel.json is refused with the same message the CLI gives.
"""

import re

import pytest
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

from distrokernels.errors import InvalidInput
from distrokernels.provisioner import DistroProvisioner, validate_config

REFUSED = [
    ({"cpus": -1}, "cpus -1.0 must be a positive number"),
    ({"cpus": 0}, "cpus 0.0 must be a positive number"),
    ({"cpus": float("nan")}, "cpus nan must be a positive number"),
    ({"cpus": float("inf")}, "cpus inf must be a positive number"),
    ({"cpus": 1e9}, "cpus 1e+09 is more than this host's"),
    ({"memory": "lots"}, "memory 'lots' is not a size"),
    ({"memory": "1b"}, "memory 1b is below the engine's minimum of 6m"),
    ({"memory": "99999999999g"}, "memory 99999999999g is too large"),
    ({"pids_limit": 4}, "pids_limit 4 (below 16) leaves no room"),
    ({"pids_limit": 99999999999999}, "pids_limit 99999999999999 is more than Linux can ever run"),
    ({"launch_timeout": float("inf")}, "launch_timeout inf must be a positive number"),
    ({"run_as_root": True}, "run_as_root is no longer supported"),
    ({"work_volume": "../x"}, "work_volume '../x' is not a volume name"),
    ({"mounts": ["/etc:/hostetc:rw"]}, "would let the kernel write the host's /etc"),
    ({"mounts": ["/tmp:/run/distrokernels:rw"]}, "/run/distrokernels is the kernel's own"),
    ({"cap_add": ["CHOWN; rm -rf /"]}, "is not a capability"),
    ({"mounts": ["/run:/host-run"]}, "would hand the kernel the container engine"),
    ({"mounts": ["relative:/x"]}, "needs absolute paths"),
    ({"constraints": ["node.role==worker"]}, "constraints place swarm services"),
    ({"backend": "swarm", "constraints": ["gpu"]}, "is not a placement constraint"),
    ({"backend": "swarm", "network_mode": "none"}, "cannot use network mode 'none'"),
    ({"docker_host": "tcp://127.0.0.1:2375", "network_mode": "host"}, "network mode 'host'"),
    ({"engine": "podman", "backend": "swarm"}, "Podman has no swarm"),
    ({"backend": "swarm", "engine": "podman"}, "Podman has no swarm"),
    ({"mounts": ["/run/user/1000/podman/podman.sock:/s"]}, "would hand the kernel"),
]


@pytest.mark.parametrize(("config", "message"), REFUSED)
def test_a_config_the_cli_would_refuse_is_refused_by_the_provisioner_too(config, message):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        DistroProvisioner(**config)  # as jupyter_client's provisioner factory builds it
    with pytest.raises(InvalidInput, match=re.escape(message)):
        validate_config(config)  # as `install` checks it


def test_a_value_of_the_wrong_type_is_one_line_of_invalid_input():
    with pytest.raises(InvalidInput, match=r"cpus.*expected a float"):
        validate_config({"cpus": "many"})
    with pytest.raises(InvalidInput, match=r"engine.*any of \['docker', 'podman'\]"):
        validate_config({"engine": "lxd"})


def test_a_good_config_passes_and_mounts_are_normalized(tmp_path):
    provisioner = DistroProvisioner(
        cpus=1.5, memory="2g", pids_limit=64, cap_add=["CHOWN"], mounts=[str(tmp_path)]
    )
    assert provisioner.mounts == [f"{tmp_path}:{tmp_path}:ro"]


def test_a_remote_engine_mount_need_not_exist_here():
    config = {"docker_host": "tcp://127.0.0.1:2375", "mounts": ["/srv/data-on-that-host:/data"]}
    validate_config(config)


def _provisioner(argv: list[str], container_argv: list[str]) -> DistroProvisioner:
    manager = KernelManager()
    manager.connection_file = "/tmp/distrokernels-0/ab12/kernel.json"
    spec = KernelSpec(argv=argv, display_name="x", language="python")
    return DistroProvisioner(parent=manager, kernel_spec=spec, container_argv=container_argv)


def test_the_container_runs_container_argv_whatever_argv_says():
    provisioner = _provisioner(
        ["/bin/sh", "-c", "launcher", "--name", "k", "-f", "{connection_file}"],
        ["/opt/distrokernels/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    )
    assert provisioner.container_command(["--debug"]) == [
        "/opt/distrokernels/bin/python", "-m", "ipykernel_launcher",
        "-f", "/run/distrokernels/kernel.json", "--debug",  # its own copy, where it sees it
    ]  # fmt: skip


def test_a_kernelspec_from_before_the_launcher_runs_its_argv_in_the_container():
    argv = ["/opt/distrokernels/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert _provisioner(argv, []).container_command([])[-1] == "/run/distrokernels/kernel.json"
