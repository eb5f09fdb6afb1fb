"""What a kernel's container is, decided as data (no engine)."""

import os

import pytest

from distrokernels.errors import InvalidInput
from distrokernels.kernel_container import (
    KernelStart,
    container_spec,
    kernel_environment,
)
from distrokernels.mounts import parse_mount
from distrokernels.provisioner import DistroProvisioner

ALLOW = ["LANG", "LC_*", "TZ"]


def test_host_secrets_and_parent_pid_never_reach_the_kernel():
    host = {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "JPY_PARENT_PID": "123", "PATH": "/x", "LANG": "C"}
    env = kernel_environment(host, [], ALLOW)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "JPY_PARENT_PID" not in env
    assert "PATH" not in env
    assert env["LANG"] == "C"


def test_kernelspec_env_and_session_name_pass():
    host = {"MY_SETTING": "1", "JPY_SESSION_NAME": "/home/u/nb.ipynb", "LC_ALL": "C.UTF-8"}
    env = kernel_environment(host, ["MY_SETTING"], ALLOW)
    assert env["MY_SETTING"] == "1"
    assert env["JPY_SESSION_NAME"] == "/home/u/nb.ipynb"
    assert env["LC_ALL"] == "C.UTF-8"


def test_kernel_gets_a_private_home_and_process_group_signals():
    env = kernel_environment({}, [], ALLOW)
    assert env["HOME"] == "/home/kernel"
    assert env["TINI_KILL_PROCESS_GROUP"] == "1"


def test_mounts_are_read_only_unless_asked(tmp_path):
    assert parse_mount(str(tmp_path)) == f"{tmp_path}:{tmp_path}:ro"
    assert parse_mount(f"{tmp_path}:/data:rw") == f"{tmp_path}:/data:rw"


def test_a_system_folder_is_writable_only_where_the_server_allows_it(monkeypatch):
    assert parse_mount("/etc:/hostetc") == "/etc:/hostetc:ro"  # reading is the user's call
    monkeypatch.setenv("DISTROKERNELS_ALLOW_SYSTEM_MOUNTS", "1")
    assert parse_mount("/etc:/hostetc:rw") == "/etc:/hostetc:rw"


@pytest.mark.parametrize(
    "mount",
    [
        "relative/path",
        "/does/not/exist/at/all",
        "/tmp:data",
        "/tmp/../etc:/x",
        "/tmp:/a:/b:/c",
        "/",
        "/run:/host-run:ro",
        "/etc:/hostetc:rw",  # the host's system folders: never writable from a kernel
        "/usr/lib:/l:rw",
        "/proc:/p:rw",
        "/var/run:/vr:rw",  # a link to /run: judged by where it leads
        "/tmp:/run/distrokernels",  # the kernel's own folder
        "/tmp:/run/distrokernels/x:ro",
    ],
)
def test_bad_mounts_are_refused(mount):
    assert os.path.isdir("/tmp")
    with pytest.raises(InvalidInput):
        parse_mount(mount)


def start(**changes) -> KernelStart:
    facts = {
        "kernel_id": "0123abcd-ffff", "kernelspec": "distro-debian-12",
        "command": ["/opt/distrokernels/bin/python", "-m", "ipykernel_launcher"],
        "environment": {"LANG": "C.UTF-8", "AWS_SECRET_ACCESS_KEY": "x", "JPY_PARENT_PID": "9"},
        "cwd": "/home/ada/notebooks", "uid": 1000, "gid": 1000, "owner": "vm:42:777",
        "runtime_dir": "/run/user/1000/distrokernels/ab12", "kernelspec_env": [],
        "name_suffix": "9f9f",
    }  # fmt: skip
    return KernelStart(**{**facts, **changes})


def test_a_local_kernel_runs_as_the_user_in_the_notebook_folder_with_nothing_more(tmp_path):
    config = DistroProvisioner(image="distrokernels/debian-12:abc", mounts=[str(tmp_path)])
    spec = container_spec(config, start())
    assert spec.image == "distrokernels/debian-12:abc"
    assert spec.user == "1000:1000"
    assert spec.working_dir == "/home/ada/notebooks"
    assert sorted(spec.binds) == sorted(
        [
            "/home/ada/notebooks:/home/ada/notebooks:rw",
            # its own io folder, at the in-container folder: never the whole runtime root
            "/run/user/1000/distrokernels/ab12/io:/run/distrokernels:rw",
            f"{tmp_path}:{tmp_path}:ro",
        ]
    )
    assert spec.environment == {
        "LANG": "C.UTF-8", "HOME": "/home/kernel", "TINI_KILL_PROCESS_GROUP": "1",
    }  # fmt: skip
    assert spec.labels == {
        "distrokernels.kernel-id": "0123abcd-ffff",
        "distrokernels.kernelspec": "distro-debian-12",
        "distrokernels.owner": "vm:42:777",
        "distrokernels.runtime-dir": "/run/user/1000/distrokernels/ab12",
    }
    assert (spec.cap_drop, spec.cap_add, spec.security_opt) == (["ALL"], [], ["no-new-privileges"])
    assert spec.tmpfs == {"/home/kernel": "rw,exec,mode=0700,uid=1000,gid=1000"}
    assert (spec.pids_limit, spec.network_mode, spec.ports, spec.files) == (1024, "bridge", {}, {})
    assert spec.name == "distrokernels-0123abcd-9f9f"


def test_loosened_defaults_reach_the_container_and_nothing_else():
    config = DistroProvisioner(
        image="i", cap_add=["CHOWN"], no_new_privileges=False,
        memory="2g", cpus=1.5, pids_limit=64, network_mode="none",
    )  # fmt: skip
    spec = container_spec(config, start())
    assert spec.user == "1000:1000" and "uid=1000,gid=1000" in spec.tmpfs["/home/kernel"]
    assert (spec.cap_add, spec.security_opt) == (["CHOWN"], [])
    assert (spec.memory, spec.cpus, spec.pids_limit, spec.network_mode) == ("2g", 1.5, 64, "none")


def test_a_remote_engine_kernel_gets_its_volume_and_its_connection_file_delivered():
    config = DistroProvisioner(image="i", docker_host="tcp://127.0.0.1:2375", work_volume="w")
    spec = container_spec(config, start(tcp_connection_file=b"{}"))
    assert spec.binds == ["w:/work:rw"]  # no host folder: that machine has none of ours
    assert spec.working_dir == "/work"
    assert spec.files == {"/run/distrokernels/kernel.json": b"{}"}
    assert spec.ports == dict.fromkeys(range(50001, 50006), 0)


def test_a_swarm_kernel_runs_the_pushed_digest_never_a_local_tag():
    config = DistroProvisioner(
        image="distrokernels/debian-12:abc", image_id="sha256:1", backend="swarm",
        pushed_image="registry:5000/kernels@sha256:2",
    )  # fmt: skip
    assert container_spec(config, start(tcp_connection_file=b"{}")).image == (
        "registry:5000/kernels@sha256:2"
    )
