"""What no kernel may write: guard_binds decides it as data (guards.py)."""

import os

from distrokernels.guards import HostGuard, current, guard_binds

GUARD = HostGuard(
    home="/home/ada",
    home_entries=("data.csv", "notebooks", "venv"),
    read_only=("/home/ada/.local/share/jupyter", "/home/ada/venv", "/usr/share/jupyter"),
)


def mounts(binds: list[str]) -> dict[str, tuple[str, str]]:
    """destination -> (source, mode)"""
    return {b.rsplit(":", 2)[1]: (b.rsplit(":", 2)[0], b.rsplit(":", 2)[2]) for b in binds}


def test_a_notebook_folder_of_its_own_is_left_as_it_is():
    binds = ["/home/ada/notebooks/course:/home/ada/notebooks/course:rw"]
    assert guard_binds(binds, GUARD) == binds


def test_the_home_folder_mounted_writable_keeps_its_top_and_dot_entries_read_only():
    guarded = mounts(guard_binds(["/home/ada:/home/ada:rw"], GUARD))
    assert guarded == {
        "/home/ada": ("/home/ada", "ro"),  # no new ~/.bash_profile, no ~/.ssh rewritten
        "/home/ada/data.csv": ("/home/ada/data.csv", "rw"),
        "/home/ada/notebooks": ("/home/ada/notebooks", "rw"),
        "/home/ada/venv": ("/home/ada/venv", "ro"),  # the host's environment: never
        "/home/ada/.local/share/jupyter": ("/home/ada/.local/share/jupyter", "ro"),
    }


def test_a_writable_mount_above_home_guards_home_where_the_container_sees_it():
    guarded = mounts(guard_binds(["/home:/mnt/homes:rw"], GUARD))
    assert guarded["/mnt/homes"] == ("/home", "rw")
    assert guarded["/mnt/homes/ada"] == ("/home/ada", "ro")
    assert guarded["/mnt/homes/ada/notebooks"] == ("/home/ada/notebooks", "rw")
    assert guarded["/mnt/homes/ada/.local/share/jupyter"][1] == "ro"


def test_a_folder_inside_a_dot_entry_or_a_jupyter_folder_is_mounted_read_only():
    binds = [
        "/home/ada/.config/x:/home/ada/.config/x:rw",
        "/home/ada/.local/share/jupyter/kernels/k:/k:rw",
        "/usr/share/jupyter:/sj:rw",
        "/home/ada/new-since:/n:rw",  # not an entry when the guard was read: read-only
    ]
    assert {mode for _, mode in mounts(guard_binds(binds, GUARD)).values()} == {"ro"}


def test_read_only_mounts_and_volumes_are_not_touched():
    binds = ["/home/ada:/home/ada:ro", "distrokernels-work-ada:/work:rw"]
    assert guard_binds(binds, GUARD) == binds


def test_the_guard_of_this_host_lists_entries_without_dots_or_links(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "bin").mkdir()  # on PATH: never writable
    (tmp_path / ".ssh").mkdir()
    (tmp_path / "notes.txt").write_text("")
    os.symlink("/etc", tmp_path / "etc-link")
    (tmp_path / "odd:name").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    os.makedirs(os.environ["JUPYTER_DATA_DIR"], exist_ok=True)
    (tmp_path / "launcher-env" / "bin").mkdir(parents=True)
    guard = current(str(tmp_path / "launcher-env" / "bin" / "python"))
    assert guard.home == str(tmp_path.resolve())
    assert guard.home_entries == ("launcher-env", "notebooks", "notes.txt")
    assert os.path.realpath(os.environ["JUPYTER_DATA_DIR"]) in guard.read_only
    assert str((tmp_path / "launcher-env").resolve()) in guard.read_only
