"""What the provisioner passes into the container (no engine)."""

import os

import pytest

from distrokernels.errors import InvalidInput
from distrokernels.provisioner import kernel_environment, parse_mount

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
    ],
)
def test_bad_mounts_are_refused(mount):
    assert os.path.isdir("/tmp")
    with pytest.raises(InvalidInput):
        parse_mount(mount)
