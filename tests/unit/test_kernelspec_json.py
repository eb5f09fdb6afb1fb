"""The kernel.json distrokernels writes, checked as data (no engine)."""

import os
import subprocess
import sys

import pytest

from distrokernels.errors import InvalidInput
from distrokernels.images import KernelImage
from distrokernels.kernelspecs import (
    default_display_name,
    default_name,
    kernelspec_json,
    launcher_argv,
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


def test_argv_is_a_host_command_that_needs_neither_path_nor_an_active_venv():
    spec = kernelspec_json(image(), "distro-debian-12", "Python 3.11 (Debian 12)")
    shell, flag, script, python, *rest = spec["argv"]
    assert (shell, flag) == ("/bin/sh", "-c")
    assert python == sys.executable and os.path.isabs(python)
    assert "-m distrokernels.launcher" in script
    assert rest == ["--name", "distro-debian-12", "-f", "{connection_file}"]


def test_launcher_argv_says_in_one_line_what_to_do_when_its_environment_is_gone(tmp_path):
    argv = launcher_argv("distro-debian-12", python=str(tmp_path / "gone" / "bin" / "python"))
    argv = [arg.replace("{connection_file}", str(tmp_path / "k.json")) for arg in argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("distrokernels: error: kernel distro-debian-12 runs through")
    assert "--name distro-debian-12 --replace" in result.stderr


def test_the_provisioner_runs_the_in_container_interpreter_not_bare_python():
    config = kernelspec_json(image(), "k", "x")["metadata"]["kernel_provisioner"]["config"]
    assert config["container_argv"][0] == "/opt/distrokernels/bin/python"
    assert config["container_argv"][3:5] == ["-f", "{connection_file}"]


def test_kernel_banner_names_the_distro_userland():
    config = kernelspec_json(image(), "k", "x")["metadata"]["kernel_provisioner"]["config"]
    assert config["container_argv"][-1].startswith(
        "--InteractiveShell.banner2=Debian GNU/Linux 12 (bookworm)"
    )


def test_interrupts_are_signals_and_the_provisioner_is_ours():
    spec = kernelspec_json(image(), "k", "x", config={"source": "debian:bookworm"})
    assert spec["interrupt_mode"] == "signal"
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "distrokernels"
    config = dict(provisioner["config"])
    config.pop("container_argv")
    assert config == {
        "image": "distrokernels/debian-12:abc",
        "image_id": "sha256:123",
        "source": "debian:bookworm",
    }


def test_metadata_shows_distro_and_python_without_a_terminal():
    info = kernelspec_json(image(), "k", "x")["metadata"]["distrokernels"]
    assert info["distro"] == "Debian GNU/Linux 12 (bookworm)"
    assert info["python"] == "3.11.2"


@pytest.mark.parametrize(("ipykernel", "debugger"), [("7.4.0", True), ("5.5.6", False)])
def test_debugger_is_advertised_only_where_ipykernel_has_one(ipykernel, debugger):
    assert kernelspec_json(image(ipykernel), "k", "x")["metadata"]["debugger"] is debugger


@pytest.mark.parametrize(("ipykernel", "curve"), [("7.4.0", True), ("6.29.5", False)])
def test_curve_support_is_declared_for_jupyter_client_only_where_ipykernel_has_it(ipykernel, curve):
    metadata = kernelspec_json(image(ipykernel), "k", "x")["metadata"]
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
