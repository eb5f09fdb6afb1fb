"""Removing one kernel never breaks another: kernel images are reference-counted.

Images are content-addressed, so kernelspecs installed from one request (by one user or
by several on a shared engine) name one tag. Each kernelspec holds a reference tag of
its own; an image goes only when no reference and no container uses it.
"""

import json
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from distrokernels.references import reference

from .conftest import BASE, run_cli, run_in_new_kernel

EXTRAS = ("--pip", "six")  # a request of these tests' own: its image is theirs to delete
REBUILT = "debian:trixie"


def install(name: str, *options: str, base: str = BASE) -> str:
    result = run_cli("install", base, "--name", name, "--replace", *EXTRAS, *options)
    assert result.returncode == 0, result.stderr
    return result.stderr


def image_id(name: str) -> str:
    return (
        KernelSpecManager()
        .get_kernel_spec(name)
        .metadata["kernel_provisioner"]["config"]["image_id"]
    )


def image_tag(name: str) -> str:
    return (
        KernelSpecManager().get_kernel_spec(name).metadata["kernel_provisioner"]["config"]["image"]
    )


@pytest.mark.security
async def test_removing_a_kernel_with_its_image_keeps_what_another_kernelspec_uses(
    base_image, engine, tmp_path
):
    install("dk-ref-a")
    install("dk-ref-b")
    tag = image_tag("dk-ref-a")
    assert tag == image_tag("dk-ref-b")  # one request, one content-addressed image
    image_id = engine.find_image(tag)["Id"]
    for name in ("dk-ref-a", "dk-ref-b"):
        assert engine.find_image(reference(name))["Id"] == image_id

    removed = run_cli("remove", "dk-ref-a", "--image")
    assert removed.returncode == 0, removed.stderr
    assert f"kept image {tag}: still used by your kernel dk-ref-b" in removed.stderr
    assert engine.find_image(reference("dk-ref-a")) is None
    output, reply, _ = await run_in_new_kernel("dk-ref-b", tmp_path, "import six; print('ok')")
    assert (reply["status"], output) == ("ok", "ok\n")

    last = run_cli("remove", "dk-ref-b", "--image")
    assert last.returncode == 0, last.stderr
    assert f"removed image {tag}" in last.stderr
    assert engine.find_image(image_id) is None


async def test_a_running_kernels_image_is_never_removed_and_gc_images_takes_it_after(
    base_image, installed_kernel, engine, tmp_path
):
    install("dk-ref-running")
    tag = image_tag("dk-ref-running")
    image_id = engine.find_image(tag)["Id"]
    manager = AsyncKernelManager(kernel_name="dk-ref-running")
    await manager.start_kernel(cwd=str(tmp_path))
    try:
        removed = run_cli("remove", "dk-ref-running", "--image")
        assert removed.returncode == 0, removed.stderr
        assert "still used by 1 container" in removed.stderr
        dry = run_cli("gc", "--images", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert tag not in dry.stdout
    finally:
        await manager.shutdown_kernel(now=True)
    assert engine.find_image(image_id) is not None

    dry = run_cli("gc", "--images", "--dry-run")
    listed = {line.split()[3] for line in dry.stdout.splitlines() if line.startswith("would")}
    assert tag in listed
    assert image_tag(installed_kernel) not in listed  # referenced: never listed
    assert engine.find_image(image_id) is not None  # a dry run deletes nothing

    collected = run_cli("gc", "--images")
    assert collected.returncode == 0, collected.stderr
    removed_now = {
        line.split()[2]
        for line in collected.stdout.splitlines()
        if line.startswith("removed image")
    }
    assert removed_now == listed
    assert engine.find_image(image_id) is None
    reclaimed = [line for line in collected.stdout.splitlines() if "reclaimed" in line]
    assert reclaimed and float(reclaimed[0].split(" MB reclaimed")[0].split()[-1]) > 0
    again = run_cli("gc", "--images", "--dry-run")
    assert "would remove" not in again.stdout


async def test_a_rebuild_does_not_change_what_another_kernelspec_runs(
    suite_kernels, engine, tmp_path
):
    # A rebuild ignores every cache, the dependency layer's too: on Debian 13, so that the
    # Debian 12 kernels of the other tests keep sharing one dependency layer.
    install("dk-ref-one", base=REBUILT)
    install("dk-ref-two", base=REBUILT)
    before = image_id("dk-ref-two")
    rebuilt = install("dk-ref-one", "--rebuild", base=REBUILT)
    assert "1 other kernel(s) keep running the build they were installed with" in rebuilt
    assert image_id("dk-ref-one") != before and image_tag("dk-ref-one") == image_tag("dk-ref-two")
    assert engine.find_image(reference("dk-ref-two"))["Id"] == before  # its reference holds it
    _, _, container = await run_in_new_kernel("dk-ref-two", tmp_path, "pass")
    assert container["Image"] == before  # by id: not the tag the rebuild moved
    for name in ("dk-ref-one", "dk-ref-two"):
        assert run_cli("remove", name, "--image").returncode == 0
    assert engine.find_image(before) is None


@pytest.mark.security
def test_remove_image_of_a_kernelspec_edited_to_a_foreign_image_deletes_nothing(base_image, engine):
    install("dk-ref-foreign")
    base_id = engine.find_image(BASE)["Id"]
    engine.tag_image(base_id, "mal-victim:one")
    engine.tag_image(base_id, "mal-victim:other-users-tag")
    kernel_json = Path(KernelSpecManager().get_kernel_spec("dk-ref-foreign").resource_dir)
    spec = json.loads((kernel_json / "kernel.json").read_text())
    config = spec["metadata"]["kernel_provisioner"]["config"]
    config["image"], config["image_id"] = "mal-victim:one", ""
    (kernel_json / "kernel.json").write_text(json.dumps(spec))
    try:
        assert run_cli("list").returncode == 0  # puts no reference on a foreign image
        assert reference("dk-ref-foreign") not in engine.find_image(base_id)["RepoTags"]
        removed = run_cli("remove", "dk-ref-foreign", "--image")
        assert removed.returncode == 0, removed.stderr
        tags = engine.find_image(base_id)["RepoTags"]
        assert {"mal-victim:one", "mal-victim:other-users-tag", BASE} <= set(tags)
    finally:
        engine.remove_image("mal-victim:one")
        engine.remove_image("mal-victim:other-users-tag")


def test_remove_drops_the_kernelspecs_reference(base_image, engine):
    install("dk-ref-dropped")
    tag = image_tag("dk-ref-dropped")
    assert engine.find_image(reference("dk-ref-dropped")) is not None
    assert run_cli("remove", "dk-ref-dropped").returncode == 0
    assert engine.find_image(reference("dk-ref-dropped")) is None
    assert engine.find_image(tag) is not None  # the image is gc --images' to judge
    engine.remove_image(tag)  # this request's image: the offline tests build it anew


def test_kernelspecs_from_before_references_gain_theirs_on_list(installed_kernel, engine):
    ours = reference(installed_kernel)
    image_id = engine.find_image(image_tag(installed_kernel))["Id"]
    assert engine.remove_image(ours)  # as installed before references existed
    assert engine.find_image(ours) is None
    assert run_cli("list").returncode == 0
    assert engine.find_image(ours)["Id"] == image_id


def test_images_shows_referenced_and_unreferenced_bytes_per_engine(installed_kernel):
    result = run_cli("images")
    assert result.returncode == 0, result.stderr
    assert "default: " in result.stdout and "unreferenced image(s)" in result.stdout
