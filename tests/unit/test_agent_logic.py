"""The warm-kernel agent's decisions as data: what travels between a client and the agent,
whose a claimed kernel is, whom the agent serves. The agent itself, with real clients and
kernels, is proven in tests/integration/test_agent.py."""

import json
import os
import socket

import docker.errors
import pytest

from distrokernels import agent, agent_client, orphans, runtime
from distrokernels.engine import (
    LABEL_OWNER,
    LABEL_POOL,
    LABEL_RUNTIME_DIR,
    Engine,
    KernelContainerSpec,
)
from distrokernels.errors import DistroKernelsError
from distrokernels.pool import Template

SPEC = KernelContainerSpec(
    image="sha256:abc",
    command=["/opt/distrokernels/bin/python"],
    user="1000:1000",
    working_dir="/home/u/work",
    environment={"LANG": "C.UTF-8"},
    binds=["/home/u/work:/home/u/work:rw"],
    labels={LABEL_POOL: "warm", LABEL_OWNER: "host:100:5"},
)


def test_a_template_travels_as_json_and_every_clients_is_the_agents_once_owned():
    template = Template("distro-debian-12", "", SPEC, "/run/user/1000/distrokernels", 1)
    sent = Template.from_json(json.loads(json.dumps(template.to_json())))
    assert sent == template and sent.key == template.key
    other_client = Template.from_json(
        {**template.to_json(), "spec": {**template.to_json()["spec"], "labels": {
            LABEL_POOL: "warm", LABEL_OWNER: "host:200:9"}}}
    )  # fmt: skip
    assert other_client.key != template.key
    assert other_client.owned_by("agent").key == template.owned_by("agent").key
    assert template.owned_by("agent").spec.labels[LABEL_OWNER] == "agent"


@pytest.mark.parametrize(
    "sent",
    [None, {}, {"spec": {}}, {"kernelspec": "k", "engine_url": "", "runtime_root": "/r",
     "size": 1, "spec": {"image": "x"}}],
)  # fmt: skip
def test_what_is_not_a_template_is_refused_in_one_line(sent):
    with pytest.raises(DistroKernelsError, match="not a warm-kernel template"):
        Template.from_json(sent)


def test_a_template_with_files_or_ports_is_not_a_warm_one():
    data = Template("k", "", SPEC, "/r", 1).to_json()
    data["spec"]["ports"] = {"5000": 0}
    with pytest.raises(DistroKernelsError):
        Template.from_json(data)


def test_the_agent_serves_only_clients_of_its_own_environment(monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", "/a")
    sent = agent_client.context()
    assert agent_client.mismatch(sent) == ""
    monkeypatch.setenv("JUPYTER_PATH", "/b")
    assert agent_client.mismatch(sent) == "JUPYTER_PATH"
    assert agent_client.mismatch(None) == "no context"
    with_prefix = agent_client.context(with_prefix=True)
    assert agent_client.mismatch({**with_prefix, "prefix": "/other/venv"}) == "prefix"


def test_the_peer_of_a_unix_socket_is_known_by_pid_and_uid():
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        assert agent.peer_credentials(ours) == (os.getpid(), os.getuid(), os.getgid())


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("", agent.DEFAULT_IDLE_TIMEOUT), ("0", 0.0), ("30", 30.0), ("-5", 0.0),
     ("soon", agent.DEFAULT_IDLE_TIMEOUT)],
)  # fmt: skip
def test_the_idle_timeout_comes_from_the_environment(value, seconds):
    assert agent.idle_timeout({agent_client.IDLE_TIMEOUT: value}) == seconds


def test_the_agent_can_be_switched_off_per_client():
    assert agent_client.enabled({})
    assert not agent_client.enabled({agent_client.SWITCH: "0"})


@pytest.fixture
def root(tmp_path, monkeypatch):
    folder = tmp_path / "rt"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(runtime, "runtime_root", lambda: folder)
    return folder


def test_a_claimed_warm_kernel_is_its_claimants_and_nothing_else_names_one(root, tmp_path):
    kernel = root / "k1"
    kernel.mkdir()
    slot = root / "w-1"
    slot.symlink_to(kernel)
    runtime.write_claimant(str(kernel), "host:300:7")
    runtime.write_claimant(str(kernel), "host:301:8")  # a restart's claim replaces it
    labels = {LABEL_OWNER: "agent", LABEL_RUNTIME_DIR: str(slot)}
    assert orphans.owner(labels) == "host:301:8"

    assert orphans.owner({LABEL_OWNER: "agent", LABEL_RUNTIME_DIR: str(kernel)}) == "agent"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / runtime.CLAIMANT).write_text("someone")
    (root / "w-2").symlink_to(outside)
    assert orphans.owner({LABEL_OWNER: "agent", LABEL_RUNTIME_DIR: str(root / "w-2")}) == "agent"
    planted = root / "k3"
    planted.mkdir()
    (planted / runtime.CLAIMANT).symlink_to(outside / runtime.CLAIMANT)
    (root / "w-3").symlink_to(planted)
    assert orphans.owner({LABEL_OWNER: "agent", LABEL_RUNTIME_DIR: str(root / "w-3")}) == "agent"


class _StoppingOnce:
    """Podman's answer to removing a container that is stopping at that moment."""

    def __init__(self) -> None:
        self.calls = 0

    def remove_container(self, container_id: str, force: bool) -> None:
        self.calls += 1
        if self.calls == 1:
            response = type("R", (), {"status_code": 500, "reason": "x", "url": "u"})()
            raise docker.errors.APIError(
                "500", response, explanation="cannot remove container: container state improper"
            )


def test_a_container_podman_is_stopping_is_removed_when_asked_again():
    engine = object.__new__(Engine)
    engine.api = _StoppingOnce()
    engine.remove_container("abc")
    assert engine.api.calls == 2
