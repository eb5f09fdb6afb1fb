"""Rootless Podman, as data: what its info says, which limits it ignores, how its names,
tmpfs options and build stream differ from dockerd's, and which engine `auto` picks."""

import pytest

from distrokernels.engine import choose_engine, client, engine_url, podman
from distrokernels.engine.images import _STEP_IMAGE
from distrokernels.engine.podman import PodmanHost

# Abridged from `GET /v4.0.0/libpod/info` of Podman 4.3.1, rootless, on this machine kind.
CGROUP_V1_INFO = {
    "host": {
        "cgroupVersion": "v1",
        "cgroupControllers": [],
        "security": {"rootless": True, "seccompEnabled": True},
    },
    "store": {"graphDriverName": "overlay"},
}
LIMITS = {"memory": "1g", "cpus": 1.5, "pids_limit": 1024}


def test_rootless_podman_on_cgroup_v1_ignores_every_limit_and_says_so():
    host = PodmanHost.from_info(CGROUP_V1_INFO)
    assert host == PodmanHost(True, "v1", (), "overlay")
    assert host.ignored_limits(LIMITS) == ["memory=1g", "cpus=1.5", "pids_limit=1024"]
    warning = host.limits_warning(LIMITS)
    assert "cgroup v1 cannot apply memory=1g, cpus=1.5, pids_limit=1024" in warning
    assert "delegated to you: none" in warning


def test_on_cgroup_v2_only_the_controllers_not_delegated_are_ignored():
    info = {
        "host": {
            "cgroupVersion": "v2",
            "cgroupControllers": ["memory", "pids"],
            "security": {"rootless": True},
        },
        "store": {"graphDriverName": "overlay"},
    }
    host = PodmanHost.from_info(info)
    assert host.ignored_limits(LIMITS) == ["cpus=1.5"]
    assert host.ignored_limits({"memory": "1g", "cpus": None, "pids_limit": 64}) == []
    assert host.limits_warning({"memory": None, "cpus": None, "pids_limit": 64}) == ""
    assert "delegated to you: memory pids" in host.limits_warning(LIMITS)


def test_podman_running_as_root_applies_every_limit():
    host = PodmanHost(rootless=False, cgroup_version="v1", controllers=(), graph_driver="overlay")
    assert host.ignored_limits(LIMITS) == []


def test_the_vfs_storage_driver_is_warned_about():
    assert PodmanHost(True, "v2", (), "overlay").storage_warning == ""
    assert "containers-storage" in PodmanHost(True, "v2", (), "vfs").storage_warning


@pytest.mark.parametrize(
    ("podman_name", "docker_name"),
    [
        ("docker.io/distrokernels/debian-12:090923d375ac", "distrokernels/debian-12:090923d375ac"),
        ("docker.io/library/debian:bookworm", "debian:bookworm"),
        ("localhost/debian:bookworm", "debian:bookworm"),
        ("registry.example:5000/kernels:1", "registry.example:5000/kernels:1"),
    ],
)
def test_podman_image_names_read_as_dockerd_names_them(podman_name, docker_name):
    assert podman.short_name(podman_name) == docker_name


def test_the_private_home_tmpfs_is_owned_by_the_container_user_in_podmans_words():
    options = "rw,exec,mode=0700,uid=1000,gid=1000"
    assert podman.podman_tmpfs(options) == "rw,exec,mode=0700,U"


@pytest.mark.parametrize(
    ("line", "image"),
    [
        (" ---> 1a2b3c4d5e6f", "1a2b3c4d5e6f"),  # dockerd's classic builder
        ("--> e008c302cd3", "e008c302cd3"),  # Podman (buildah)
        (" ---> Running in 1a2b3c4d5e6f", None),
        (" ---> Using cache", None),
        ("[2/2] STEP 1/4: FROM debian:bookworm", None),
    ],
)
def test_a_build_steps_image_is_read_from_either_engines_stream(line, image):
    found = _STEP_IMAGE.fullmatch(line.strip())
    assert (found[1] if found else None) == image


def test_podman_runs_on_the_socket_of_whoever_starts_the_kernel(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert engine_url("podman") == "unix:///run/user/1234/podman/podman.sock"
    assert engine_url("podman", "tcp://127.0.0.1:8888") == "tcp://127.0.0.1:8888"
    assert engine_url("docker") == ""
    assert podman.is_user_url("unix:///run/user/1234/podman/podman.sock")


@pytest.mark.parametrize(
    ("docker_host", "socket_open", "podman_installed", "chosen"),
    [
        ("", True, True, "docker"),  # dockerd open to the user wins
        ("", False, True, "podman"),  # no access to dockerd: the user's own Podman
        ("", False, False, "docker"),  # neither: dockerd's error says how to get access
        ("tcp://127.0.0.1:2375", False, True, "docker"),  # a named engine is used as named
    ],
)
def test_auto_picks_dockerd_when_it_is_open_else_the_users_podman(
    monkeypatch, docker_host, socket_open, podman_installed, chosen
):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(client.os, "access", lambda path, mode: socket_open)
    monkeypatch.setattr(client.shutil, "which", lambda name: "/usr/bin/podman" * podman_installed)
    assert choose_engine("auto", docker_host) == chosen
    assert choose_engine("podman", docker_host) == "podman"  # asked for: no guess
