"""The kernel.json distrokernels writes, checked as data (no engine)."""

import pytest

from distrokernels.errors import InvalidInput
from distrokernels.images import KernelImage
from distrokernels.kernelspecs import (
    default_display_name,
    default_name,
    kernelspec_json,
    validate_display_name,
    validate_name,
)


def image(ipykernel: str = "7.4.0", python: str = "3.11.2") -> KernelImage:
    labels = {
        "distrokernels.display": "Debian 12",
        "distrokernels.slug": "debian-12",
        "distrokernels.python": python,
        "distrokernels.ipykernel": ipykernel,
        "distrokernels.distro": "Debian GNU/Linux 12 (bookworm)",
        "distrokernels.os-id": "debian",
    }
    return KernelImage(id="sha256:123", tag="distrokernels/debian-12:abc", labels=labels)


def test_names_follow_the_distro_and_python():
    assert default_name(image()) == "distro-debian-12"
    assert default_display_name(image()) == "Python 3.11 (Debian 12)"


def test_argv_uses_the_in_container_interpreter_not_bare_python():
    spec = kernelspec_json(image(), "Python 3.11 (Debian 12)")
    assert spec["argv"][0] == "/opt/distrokernels/bin/python"
    assert spec["argv"][3:5] == ["-f", "{connection_file}"]


def test_kernel_banner_names_the_distro_userland():
    spec = kernelspec_json(image(), "x")
    assert spec["argv"][-1].startswith("--InteractiveShell.banner2=Debian GNU/Linux 12 (bookworm)")


def test_interrupts_are_signals_and_the_provisioner_is_ours():
    spec = kernelspec_json(image(), "x", config={"source": "debian:bookworm"})
    assert spec["interrupt_mode"] == "signal"
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "distrokernels"
    assert provisioner["config"] == {
        "image": "distrokernels/debian-12:abc",
        "image_id": "sha256:123",
        "source": "debian:bookworm",
    }


def test_metadata_shows_distro_and_python_without_a_terminal():
    info = kernelspec_json(image(), "x")["metadata"]["distrokernels"]
    assert info["distro"] == "Debian GNU/Linux 12 (bookworm)"
    assert info["python"] == "3.11.2"


@pytest.mark.parametrize(("ipykernel", "debugger"), [("7.4.0", True), ("5.5.6", False)])
def test_debugger_is_advertised_only_where_ipykernel_has_one(ipykernel, debugger):
    assert kernelspec_json(image(ipykernel), "x")["metadata"]["debugger"] is debugger


@pytest.mark.parametrize(("ipykernel", "curve"), [("7.4.0", True), ("6.29.5", False)])
def test_curve_support_is_declared_for_jupyter_client_only_where_ipykernel_has_it(ipykernel, curve):
    metadata = kernelspec_json(image(ipykernel), "x")["metadata"]
    assert ("curve" in metadata.get("supported_encryption", [])) is curve


@pytest.mark.parametrize(
    "name",
    ["", "../evil", "a b", "x" * 65, "name\nnewline", "trailing\n", "$(id)", "Caps", "-lead"],
)
def test_bad_kernelspec_names_are_refused(name):
    with pytest.raises(InvalidInput):
        validate_name(name)


@pytest.mark.parametrize("display", ["", "  ", "two\nlines", "x" * 129])
def test_bad_display_names_are_refused(display):
    with pytest.raises(InvalidInput):
        validate_display_name(display)


def test_display_names_may_hold_quotes_and_shell_characters():
    assert validate_display_name('Python "3" $(x) (Debian)') == 'Python "3" $(x) (Debian)'
