"""The runtime folder's layout and the host's file operations in a container's folder.

A squat by another user is proven as such a user in
tests/integration/test_unprivileged_user.py; here, as the one user the unit tests have.
"""

import os

import pytest

from distrokernels import runtime
from distrokernels.runtime import remove_labelled


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path / "distrokernels"


def test_a_kernel_folder_is_private_and_its_io_folder_fresh_at_each_start(root):
    folder = runtime.new_kernel_folder()
    assert os.path.dirname(folder) == str(root)
    assert os.stat(folder).st_mode & 0o777 == 0o700 and runtime.is_kernel_folder(folder)
    io = runtime.replace_io(folder)
    runtime.write_new(io, "kernel.json", b"{}")
    os.symlink("/etc/passwd", os.path.join(io, "planted"))
    assert runtime.replace_io(folder) == io and os.listdir(io) == []  # a restart's: empty
    assert os.path.exists("/etc/passwd")


def test_a_claimed_slot_becomes_the_kernels_io_folder(root):
    folder = runtime.new_kernel_folder()
    slot = root / "w-0123abcd"
    slot.mkdir(mode=0o700)
    (slot / "claim").write_text("")
    io = runtime.replace_io(folder, str(slot))
    assert not slot.exists() and os.listdir(io) == ["claim"]


def test_a_new_file_is_never_written_through_a_link_or_over_a_file(root, tmp_path):
    folder = runtime.new_kernel_folder()
    victim = tmp_path / "victim"
    victim.write_text("mine")
    os.symlink(victim, os.path.join(folder, "kernel.json"))
    with pytest.raises(FileExistsError):
        runtime.write_new(folder, "kernel.json", b"{}")
    assert victim.read_text() == "mine"


def test_a_link_in_place_of_the_root_is_passed_over_for_a_private_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(runtime.tempfile, "tempdir", None)  # re-read TMPDIR
    mine = tmp_path / "elsewhere"
    mine.mkdir(mode=0o700)
    squatted = tmp_path / f"distrokernels-{os.getuid()}"
    squatted.symlink_to(mine)  # private and mine, but not the folder it claims to be
    root = runtime.runtime_root()
    assert root.parent == tmp_path and root.name.startswith(f"{squatted.name}-")
    assert runtime.runtime_root() == root  # every process finds the same one


def test_gc_removes_only_folders_of_this_users_runtime_root(root, tmp_path):
    victim = tmp_path / "notebooks"
    victim.mkdir()
    remove_labelled(str(victim))  # a label anyone could have written
    assert victim.exists()
    folder = runtime.new_kernel_folder()
    remove_labelled(folder)
    assert not os.path.exists(folder)
