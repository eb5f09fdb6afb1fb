"""Every notebook in notebooks/ executes through `distrokernels run`, provenance included."""

from pathlib import Path

import nbformat
import pytest

from .conftest import run_cli

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def run_notebook(path: Path, kernel: str | None = None) -> nbformat.NotebookNode:
    ARTIFACTS.mkdir(exist_ok=True)
    output = ARTIFACTS / f"{path.stem}.{kernel or 'own'}.ipynb"
    args = ["run", str(path), "--output", str(output)]
    if kernel:
        args += ["--kernel", kernel]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return nbformat.read(output, as_version=4)


def stdout(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def _pinned(path: Path) -> bool:
    return "pin" in nbformat.read(path, as_version=4).metadata.get("distrokernels", {})


# The pinned ones run in the kernels their pins name, synced as a student would: test_pins.
@pytest.mark.parametrize(
    "path", [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if not _pinned(p)], ids=lambda p: p.stem
)
def test_unpinned_notebook_executes_in_its_own_kernel(installed_kernel, path):
    notebook = run_notebook(path)
    assert notebook.metadata["distrokernels"]["host_kernel_release"]
    assert all(
        output.get("output_type") != "error"
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def test_userlands_notebook_shows_one_kernel_and_three_distros(suite_kernels):
    path = NOTEBOOKS / "01-one-kernel-many-userlands.ipynb"
    reports = {}
    for version in ("11", "12", "13"):
        kernel = f"distro-debian-{version}"
        lines = stdout(run_notebook(path, kernel)).splitlines()
        reports[version] = dict(line.split(":", 1) for line in lines if ":" in line)
    releases = {report["kernel release"].strip() for report in reports.values()}
    distros = {report["distro"].strip() for report in reports.values()}
    pythons = {report["python"].split()[0] for report in reports.values()}
    assert len(releases) == 1
    assert len(distros) == 3 and len(pythons) == 3


def test_run_records_provenance_of_the_distro_kernel(installed_kernel, tmp_path):
    path = _notebook(tmp_path, "print(1)", installed_kernel)
    assert run_cli("run", str(path)).returncode == 0
    provenance = nbformat.read(path, as_version=4).metadata["distrokernels"]
    assert provenance["kernelspec"] == installed_kernel
    assert provenance["distro"] == "Debian GNU/Linux 12 (bookworm)"
    assert provenance["python"].startswith("3.11")
    assert provenance["image_id"].startswith("sha256:")
    assert provenance["lock_digest"].startswith("sha256:")
    assert provenance["lock_content_digest"].startswith("sha256:")
    assert provenance["base"] == "debian:bookworm"


def _notebook(tmp_path: Path, source: str, kernel: str, base: str = "") -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    if base:
        notebook.metadata["distrokernels"] = {"base": base}
    notebook.cells = [nbformat.v4.new_code_cell(source)]
    path = tmp_path / "notebook.ipynb"
    nbformat.write(notebook, path)
    return path


def test_failing_cell_fails_run_with_the_cells_error(installed_kernel, tmp_path):
    path = _notebook(tmp_path, "1 / 0", installed_kernel)
    result = run_cli("run", str(path))
    assert result.returncode == 11
    assert "ZeroDivisionError" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_distro_kernel_says_how_to_install_it(tmp_path):
    path = _notebook(tmp_path, "print(1)", "distro-not-installed", base="debian:bookworm")
    result = run_cli("run", str(path))
    assert result.returncode == 5
    assert "distrokernels install debian:bookworm --name distro-not-installed" in result.stderr


def test_run_install_installs_the_missing_kernel_then_runs(installed_kernel, tmp_path):
    path = _notebook(tmp_path, "print('ran')", "dk-test-run-install", base="debian:bookworm")
    try:
        result = run_cli("run", str(path), "--install")
        assert result.returncode == 0, result.stderr
        assert "ran" in stdout(nbformat.read(path, as_version=4))
    finally:
        run_cli("remove", "dk-test-run-install")
