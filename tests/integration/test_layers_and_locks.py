"""Extras layers share what is below them; locks rebuild the same kernel; offline builds."""

import json

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from .conftest import BASE, run_cli, run_in_new_kernel


def image_of(name: str, engine) -> dict:
    spec = KernelSpecManager().get_kernel_spec(name)
    return engine.find_image(spec.metadata["kernel_provisioner"]["config"]["image"])


@pytest.fixture(scope="module")
def two_extras_kernels(engine, base_image):
    """Two kernels from one base with different extras (a distro package, a wheel)."""
    first = run_cli(
        "install", BASE, "--name", "dk-extras-a", "--pip", "six", "--packages", "hello", "--replace"
    )
    assert first.returncode == 0, first.stderr
    second = run_cli("install", BASE, "--name", "dk-extras-b", "--pip", "attrs", "--replace")
    assert second.returncode == 0, second.stderr
    yield "dk-extras-a", "dk-extras-b"
    for name in ("dk-extras-a", "dk-extras-b"):
        run_cli("remove", name, "--image")


def test_kernels_with_different_extras_share_base_and_dependency_layers(
    two_extras_kernels, installed_kernel, engine
):
    plain = image_of(installed_kernel, engine)["RootFS"]["Layers"]
    first, second = (image_of(name, engine)["RootFS"]["Layers"] for name in two_extras_kernels)
    assert first[: len(plain)] == plain and second[: len(plain)] == plain
    assert first[len(plain) :] and second[len(plain) :]
    assert first[len(plain) :] != second[len(plain) :]


async def test_extras_are_importable_and_installed_in_the_kernel(two_extras_kernels, tmp_path):
    output, reply, _ = await run_in_new_kernel(
        two_extras_kernels[0],
        tmp_path,
        "import six, shutil; print(six.__name__, shutil.which('hello'))",
    )
    assert reply["status"] == "ok", output
    assert output.split() == ["six", "/usr/bin/hello"], output


def test_du_counts_shared_layers_once(two_extras_kernels, installed_kernel):
    result = run_cli("du", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["kernels"]}
    first, second = (rows[name] for name in two_extras_kernels)
    assert first["shared"] == first["base"] + first["dependency"] > 0
    assert first["extras"] > 0 and second["extras"] > 0
    separate = sum(row["base"] + row["dependency"] + row["extras"] for row in rows.values())
    assert report["total"] < separate
    assert "shared layers counted once" in run_cli("du").stdout


def test_repeated_install_is_a_cache_hit_with_no_build(installed_kernel, engine):
    before = image_of(installed_kernel, engine)["Id"]
    again = run_cli("install", BASE, "--replace")
    assert again.returncode == 0, again.stderr
    assert "cache hit" in again.stderr
    assert "Step " not in again.stderr and "resolving" not in again.stderr
    assert image_of(installed_kernel, engine)["Id"] == before


def test_export_remove_install_lock_reproduces_the_same_packages(two_extras_kernels, tmp_path):
    name = two_extras_kernels[1]
    exported = run_cli("export", name)
    assert exported.returncode == 0, exported.stderr
    lock_file = tmp_path / "kernel.lock"
    lock_file.write_text(exported.stdout)
    assert run_cli("remove", name, "--image").returncode == 0
    rebuilt = run_cli("install", "--lock", str(lock_file), "--name", name)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "cache hit" not in rebuilt.stderr  # the image was gone: a real rebuild
    again = json.loads(run_cli("export", name).stdout)
    before = json.loads(exported.stdout)
    assert again["distro_packages"] == before["distro_packages"]
    assert again["wheels"] == before["wheels"]
    assert again["extra_wheels"] == before["extra_wheels"]
    assert again["base"]["id"] == before["base"]["id"]


def test_lock_that_differs_from_the_rebuild_fails_naming_the_difference(installed_kernel, tmp_path):
    lock = json.loads(run_cli("export", installed_kernel).stdout)
    lock["distro_packages"]["python3"] = "0.0-tampered"
    lock_file = tmp_path / "tampered.lock"
    lock_file.write_text(json.dumps(lock))
    result = run_cli("install", "--lock", str(lock_file), "--name", "dk-test-tampered")
    assert result.returncode == 12, result.stderr
    assert "python3" in result.stderr and "0.0-tampered" in result.stderr
    assert "dk-test-tampered" not in run_cli("list").stdout


def test_offline_install_uses_only_the_wheelhouse_and_names_what_is_missing(
    installed_kernel, tmp_path
):
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run_cli(
        "install",
        BASE,
        "--offline",
        "--wheelhouse",
        str(empty),
        "--pip",
        "six",
        "--name",
        "dk-test-offline",
    )
    assert missing.returncode == 8
    assert "six" in missing.stderr and str(empty) in missing.stderr

    no_base = run_cli("install", "debian:sid", "--offline", "--wheelhouse", str(empty))
    assert no_base.returncode == 4 and "offline" in no_base.stderr

    no_wheelhouse = run_cli("install", BASE, "--offline")
    assert no_wheelhouse.returncode == 2 and "--wheelhouse" in no_wheelhouse.stderr


def test_offline_install_from_a_filled_wheelhouse_builds_without_network(
    installed_kernel, tmp_path
):
    import subprocess
    import sys

    wheelhouse = tmp_path / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheelhouse), "six"], check=True
    )
    result = run_cli(
        "install",
        BASE,
        "--offline",
        "--wheelhouse",
        str(wheelhouse),
        "--pip",
        "six",
        "--name",
        "dk-test-offline",
        "--replace",
    )
    try:
        assert result.returncode == 0, result.stderr
    finally:
        run_cli("remove", "dk-test-offline", "--image")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pip", "six; rm -rf /"], "not a Python requirement"),
        (["--pip", "pkg @ https://example.org/x.whl"], "URL"),
        (["--packages", "hello;id"], "not a distro package name"),
        (["--packages", "$(id)"], "not a distro package name"),
    ],
)
def test_extras_that_could_reach_a_shell_are_refused(args, message):
    result = run_cli("install", BASE, "--name", "dk-test-bad-extras", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
