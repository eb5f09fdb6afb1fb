"""The warm pool's decisions as data: which container serves which start, the claim's
hand-over, and what a slot says about its container. The containers themselves, and that
a warm kernel equals a cold one, are proven against the real engine in
tests/integration/test_warm_pool.py."""

import ast
import dataclasses
import json
import os
import threading
from pathlib import Path

import pytest

from distrokernels import pool
from distrokernels.engine import LABEL_POOL, LABEL_RUNTIME_DIR, KernelContainerSpec
from distrokernels.pool import KernelPool, Template, WarmContainer
from distrokernels.runtime import UnsafePath

SPEC = KernelContainerSpec(
    image="distrokernels/debian-12:abc",
    command=["/opt/distrokernels/bin/python"],
    user="1000:1000",
    working_dir="/home/u",
    environment={"HOME": "/home/kernel", "LANG": "C.UTF-8"},
    binds=["/home/u:/home/u:rw"],
    labels={LABEL_POOL: "warm", LABEL_RUNTIME_DIR: ""},
)


def template(spec: KernelContainerSpec = SPEC, kernelspec: str = "distro-debian-12") -> Template:
    return Template(kernelspec, "", spec, "/run/user/1000/distrokernels", size=1)


def test_the_key_changes_with_anything_that_decides_the_container():
    assert template().key == template().key
    assert template(kernelspec="distro-debian-11").key != template().key
    for change in (
        {"image": "distrokernels/debian-12:def"},
        {"environment": {**SPEC.environment, "LANG": "de_DE.UTF-8"}},
        {"memory": "1g"},
        {"binds": [*SPEC.binds, "/data:/data:ro"]},
        {"user": "1001:1001"},
    ):
        assert template(dataclasses.replace(SPEC, **change)).key != template().key, change


def test_a_slot_completes_the_container_the_template_describes():
    spec = template().for_slot("/run/user/1000/distrokernels/w-0123abcd")
    assert spec.command == [
        "/opt/distrokernels/bin/python",
        "-c",
        pool.WAITER,
        "/run/distrokernels/claim",
    ]
    # Its own slot, and nothing else of the runtime folder: no other kernel's key.
    assert spec.binds == [
        *SPEC.binds,
        "/run/user/1000/distrokernels/w-0123abcd:/run/distrokernels:rw",
    ]
    assert spec.labels[LABEL_RUNTIME_DIR] == "/run/user/1000/distrokernels/w-0123abcd"
    assert spec.name == "distrokernels-pool-0123abcd"
    assert (
        dataclasses.replace(
            spec, command=SPEC.command, binds=SPEC.binds, labels=SPEC.labels, name=None
        )
        == SPEC
    )


@pytest.mark.parametrize(
    ("command", "served"),
    [
        (["/opt/py", "-m", "ipykernel_launcher", "-f", "k.json"], True),
        (["/opt/py", "-m", "ipykernel_launcher"], True),
        (["/opt/py", "/opt/kernel.py", "-f", "k.json"], False),  # not a module: cold
        (["/opt/py"], False),
    ],
)
def test_only_a_python_dash_m_kernel_is_served_warm(command, served):
    assert pool.can_serve(command) is served


def test_the_waiter_is_python_3_6_syntax_and_names_nothing_a_user_would_see():
    """Its globals live in the real __main__, out of the kernel's namespace; even so,
    each is private ("_"), or a module a cold start imports too."""
    tree = ast.parse(pool.WAITER, feature_version=(3, 6))
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)]
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    assert names and all(name.startswith("_") for name in names)


def test_the_claim_reaches_a_waiting_reader_and_the_fifo_is_gone(tmp_path):
    warm = WarmContainer("c1", str(tmp_path))
    os.mkfifo(warm.fifo, 0o600)
    received = []
    reader = threading.Thread(target=lambda: received.append(Path(warm.fifo).read_text()))
    reader.start()
    env = {"LANG": "C.UTF-8", "X": "y" * 70_000}  # more than a pipe holds at once
    while not pool.hand_over(warm.slot, ["/py", "-m", "ipykernel_launcher"], "/nb", env):
        pass  # the reader opens the FIFO a moment later
    reader.join(10)
    assert json.loads(received[0]) == {
        "argv": ["/py", "-m", "ipykernel_launcher"],
        "cwd": "/nb",
        "env": env,
    }
    assert not os.path.exists(warm.fifo)


def test_a_claim_nobody_reads_is_refused_at_once(tmp_path):
    warm = WarmContainer("c1", str(tmp_path))
    assert pool.hand_over(warm.slot, ["/py", "-m", "k"], "/", {}) is False  # no FIFO
    os.mkfifo(warm.fifo, 0o600)
    assert pool.hand_over(warm.slot, ["/py", "-m", "k"], "/", {}) is False  # no reader


@pytest.mark.parametrize("planted", ["link to a file", "link to a fifo", "a regular file"])
def test_a_claim_never_writes_through_what_a_kernel_planted_at_the_fifo(tmp_path, planted):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    fifo = tmp_path / "elsewhere.fifo"
    os.mkfifo(fifo, 0o600)
    slot = tmp_path / "slot"
    slot.mkdir()
    if planted == "a regular file":
        (slot / pool.CLAIM_FIFO).write_text("")
    else:
        (slot / pool.CLAIM_FIFO).symlink_to(victim if planted == "link to a file" else fifo)
    with pytest.raises(UnsafePath):
        pool.hand_over(str(slot), ["/py", "-m", "k"], "/", {"X": "y"})
    assert victim.read_text() == "mine\n"


def test_a_slot_tells_whether_its_container_was_claimed(tmp_path):
    slot = tmp_path / "w-1"
    slot.mkdir()
    assert not pool.claimed(str(slot))
    (slot / "kernel.json").write_text("{}")  # what a container writes says nothing
    assert not pool.claimed(str(slot))
    link = tmp_path / "w-2"
    link.symlink_to(tmp_path / "kernel")  # claimed: moved into the kernel's folder
    assert pool.claimed(str(link))


def test_claim_takes_a_ready_container_once_and_skips_starting_and_removed_ones(
    tmp_path, monkeypatch
):
    kernels = KernelPool()
    discarded = []
    monkeypatch.setattr(kernels, "discard", lambda url, warm: discarded.extend(warm))
    kind = template()
    starting, removed, ready = (tmp_path / name for name in ("starting", "removed", "ready"))
    for slot in (starting, ready):
        slot.mkdir()
    os.mkfifo(ready / pool.CLAIM_FIFO)
    kernels.claim(kind)  # registers the kind
    kernels._warm[kind.key].extend(
        WarmContainer(name, str(slot))
        for name, slot in (("starting", starting), ("removed", removed), ("ready", ready))
    )
    assert kernels.claim(kind) == WarmContainer("ready", str(ready))
    assert kernels.claim(kind) is None  # handed out once; the other is still importing
    assert kernels.warm_ids() == ["starting"]  # the removed one was forgotten
    assert [warm.id for warm in discarded] == ["removed"]  # and its container removed


def test_a_changed_config_retires_the_kernelspecs_older_containers(tmp_path, monkeypatch):
    kernels = KernelPool()
    discarded = []
    monkeypatch.setattr(kernels, "discard", lambda url, warm: discarded.extend(warm))
    old, new = template(), template(dataclasses.replace(SPEC, memory="1g"))
    other = template(kernelspec="distro-debian-11")
    kernels.claim(old)
    kernels.claim(other)
    kernels._warm[old.key].append(WarmContainer("old", str(tmp_path)))
    kernels._warm[other.key].append(WarmContainer("other", str(tmp_path)))
    assert kernels.claim(new) is None
    assert [warm.id for warm in discarded] == ["old"]
    assert kernels.warm_ids() == ["other"]  # another kernelspec's are not touched


def test_a_waiter_that_never_gets_ready_is_retired(tmp_path, monkeypatch):
    """A broken image or a killed container: its slot never shows the FIFO."""
    kernels = KernelPool()
    discarded = []
    monkeypatch.setattr(kernels, "discard", lambda url, warm: discarded.extend(warm))
    kind = template()
    kernels.claim(kind)
    (tmp_path / "w-late").mkdir()
    late = WarmContainer("late", str(tmp_path / "w-late"))
    kernels._warm[kind.key].append(late)
    assert kernels.claim(kind) is None and kernels.warm_ids() == ["late"]  # still importing
    monkeypatch.setattr(pool.time, "monotonic", lambda: late.created + 61)
    assert kernels.claim(kind) is None
    assert kernels.warm_ids() == [] and discarded == [late]  # a refill replaces it


def test_the_agent_keeps_warm_kernels_for_the_last_three_folders_of_a_kernelspec(
    tmp_path, monkeypatch
):
    """Outside a server a warm kernel mounts the folder it starts in: one kind per folder,
    the least recently used beyond three retired."""
    kernels = KernelPool()
    discarded = []
    monkeypatch.setattr(kernels, "discard", lambda url, warm: discarded.extend(warm))
    folders = [template(dataclasses.replace(SPEC, working_dir=f"/home/u/{n}")) for n in "abcd"]
    for kind in folders[:3]:
        kernels.claim(kind)
        kernels._warm[kind.key].append(WarmContainer(kind.spec.working_dir, str(tmp_path)))
    kernels.claim(folders[0])  # used again: now the most recent
    kernels.claim(folders[3])
    assert [warm.id for warm in discarded] == ["/home/u/b"]
    assert sorted(kernels.warm_ids()) == ["/home/u/a", "/home/u/c"]
