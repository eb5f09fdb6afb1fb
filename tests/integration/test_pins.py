"""Notebooks that carry their userland: pin, sync on a machine with no kernels, run.

The student's machine is a Jupyter data folder of its own, with no distro kernel in it;
the engine (and its images) is this machine's, as a student's laptop has its own.
"""

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from .conftest import KERNEL, run_cli

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PINNED = ["01-one-kernel-many-userlands", "03-what-an-image-does-not-contain", "demo"]


def pin_of(path: Path) -> dict:
    return json.loads(path.read_text())["metadata"]["distrokernels"]["pin"]


@pytest.fixture(scope="module")
def student(tmp_path_factory, base_image) -> dict:
    """A Jupyter home with no kernel in it, and the course (this repository's notebooks)
    synced into it: what `distrokernels sync notebooks/` does on a fresh machine."""
    home = tmp_path_factory.mktemp("student")
    env = {"JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_PATH": str(home / "path")}
    course = home / "course"
    shutil.copytree(NOTEBOOKS, course)
    assert "distro-" not in run_cli("list", env=env).stdout
    dry = run_cli("sync", str(course), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would install from its lock (debian:bookworm)") == len(PINNED)
    synced = run_cli("sync", str(course), env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    return {"env": env, "course": course, "sync": synced}


def test_sync_installs_each_pinned_kernel_once_from_its_lock(student):
    rows = dict(line.split(maxsplit=1) for line in student["sync"].stdout.splitlines()[1:])
    statuses = {Path(notebook).stem: status for notebook, status in rows.items()}
    for name in PINNED:
        assert statuses[name].split() == [KERNEL, "installed"]
    assert statuses["02-layers-and-copy-on-write"].split() == ["-", "not", "pinned"]
    # Three notebooks pinned to one lock: one install, one image.
    assert student["sync"].stderr.count(f"installing {KERNEL}") == 1
    again = run_cli("sync", str(student["course"]), env=student["env"])
    assert again.returncode == 0 and again.stdout.count("already there") == len(PINNED)


@pytest.mark.parametrize("name", PINNED)
def test_a_synced_notebook_runs_in_the_userland_its_pin_names(student, name):
    notebook = student["course"] / f"{name}.ipynb"
    ran = run_cli("run", str(notebook), env=student["env"])
    assert ran.returncode == 0, ran.stderr
    executed = nbformat.read(notebook, as_version=4)
    recorded = executed.metadata["distrokernels"]
    assert recorded["lock_content_digest"] == recorded["pin"]["lock_digest"]
    assert recorded["pin"] == pin_of(NOTEBOOKS / f"{name}.ipynb")  # run keeps the pin
    assert not [
        output
        for cell in executed.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]


def test_pin_embeds_the_lock_and_leaves_cells_and_outputs_untouched(installed_kernel, tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": installed_kernel, "display_name": "x"}
    cell = nbformat.v4.new_code_cell("print('hi')", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    notebook.cells = [nbformat.v4.new_markdown_cell("# A lesson"), cell]
    path = tmp_path / "lesson.ipynb"
    nbformat.write(notebook, path)
    before = json.loads(path.read_text())["cells"]

    pinned = run_cli("pin", str(path))
    assert pinned.returncode == 0, pinned.stderr
    after = nbformat.read(path, as_version=4)
    nbformat.validate(after)
    assert json.loads(path.read_text())["cells"] == before
    assert after.metadata["kernelspec"]["display_name"] == "Python 3.11 (Debian 12)"
    pin = after.metadata["distrokernels"]["pin"]
    assert pin["kernelspec"] == installed_kernel and pin["lock"]["base"]["id"].startswith("sha")
    assert pin["install"] == "distrokernels sync lesson.ipynb"
    exported = json.loads(run_cli("export", installed_kernel).stdout)
    assert pin["lock"] == exported


def test_pin_refuses_a_notebook_whose_kernel_is_not_a_distro_kernel(tmp_path):
    path = tmp_path / "local.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)
    refused = run_cli("pin", str(path))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("distrokernels: error:")
    assert "'python3' is not a distro kernel" in refused.stderr


def test_a_drifted_kernel_is_refused_by_run_and_accepted_with_allow_drift(student, tmp_path):
    """The student's distro-debian-12 is replaced by a Debian 13 kernel of that name."""
    env = {"JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_PATH": str(tmp_path / "path")}
    notebook = tmp_path / "demo.ipynb"
    shutil.copy(student["course"] / "demo.ipynb", notebook)
    other = run_cli("install", "debian:trixie", "--name", KERNEL, env=env)
    assert other.returncode == 0, other.stderr

    refused = run_cli("run", str(notebook), env=env)
    assert refused.returncode == 12, refused.stderr
    assert f"pinned to {KERNEL} with lock" in refused.stderr
    assert "--allow-drift" in refused.stderr
    listed = run_cli("list", "--notebooks", str(tmp_path), env=env)
    assert "DRIFT: 1 of 1 pin another lock" in listed.stdout

    accepted = run_cli("run", str(notebook), "--allow-drift", env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert "drift accepted" in accepted.stderr
    assert (
        "Debian GNU/Linux 13"
        in nbformat.read(notebook, as_version=4).metadata["distrokernels"]["distro"]
    )


def _tampered(source: Path, target: Path, change) -> Path:
    """A copy of a pinned notebook whose pin was edited, its digest made consistent."""
    from distrokernels.locks import Lock

    data = json.loads(source.read_text())
    pin = data["metadata"]["distrokernels"]["pin"]
    change(pin["lock"])
    pin["lock_digest"] = Lock(pin["lock"]).content_digest
    target.write_text(json.dumps(data))
    return target


def test_a_hostile_pin_is_refused_in_one_line_and_nothing_is_installed(tmp_path):
    env = {"JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_PATH": str(tmp_path / "path")}

    def shell(lock):
        lock["extras"]["packages"] = ["hello; touch /tmp/pwned"]

    notebook = _tampered(NOTEBOOKS / "demo.ipynb", tmp_path / "hostile.ipynb", shell)
    refused = run_cli("sync", str(notebook), env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "is not a distro package name" in refused.stderr
    assert "distro-" not in run_cli("list", env=env).stdout


def test_a_pinned_wheel_whose_sha256_does_not_match_installs_nothing(tmp_path, base_image):
    env = {"JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_PATH": str(tmp_path / "path")}

    def swapped(lock):
        lock["wheels"][0]["sha256"] = "0" * 64

    notebook = _tampered(NOTEBOOKS / "demo.ipynb", tmp_path / "swapped.ipynb", swapped)
    failed = run_cli("sync", str(notebook), env=env)
    assert failed.returncode == 1
    assert "failed:" in failed.stdout
    assert "distro-" not in run_cli("list", env=env).stdout


def test_run_install_brings_a_pinned_notebooks_kernel_up_from_its_pin(student, tmp_path):
    env = {"JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_PATH": str(tmp_path / "path")}
    notebook = tmp_path / "demo.ipynb"
    shutil.copy(NOTEBOOKS / "demo.ipynb", notebook)
    missing = run_cli("run", str(notebook), env=env)
    assert missing.returncode == 5 and "distrokernels sync" in missing.stderr
    ran = run_cli("run", str(notebook), "--install", env=env)
    assert ran.returncode == 0, ran.stderr
    recorded = nbformat.read(notebook, as_version=4).metadata["distrokernels"]
    assert recorded["lock_content_digest"] == pin_of(NOTEBOOKS / "demo.ipynb")["lock_digest"]
