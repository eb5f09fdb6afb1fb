"""Golden files: the Dockerfile for every distro family, from its real os-release.

Regenerate after an intended change with DK_REGEN_GOLDEN=1 and review the diff.
"""

import os
from pathlib import Path

import pytest

from distrokernels.distros import OsRelease
from distrokernels.dockerfiles import plan_layer
from distrokernels.recipes import recipe_for
from distrokernels.wheels import ipykernel_stack

DATA = Path(__file__).parent.parent / "data"

# os-release file -> (display name, recipe family, the Python its archive gives)
CASES = {
    "debian-11": ("Debian 11", "debian", (3, 9)),
    "debian-12": ("Debian 12", "debian", (3, 11)),
    "debian-13": ("Debian 13", "debian", (3, 13)),
    "ubuntu-22.04": ("Ubuntu 22.04", "debian", (3, 10)),
    "ubuntu-24.04": ("Ubuntu 24.04", "debian", (3, 12)),
    "centos-7": ("CentOS 7", "yum", (3, 6)),
    "centos-stream-9": ("CentOS Stream 9", "dnf", (3, 12)),
    "rhel-ubi-9": ("RHEL 9.4", "dnf", (3, 12)),
    "rocky-9": ("Rocky Linux 9.4", "dnf", (3, 12)),
    "almalinux-8": ("AlmaLinux 8.10", "dnf", (3, 12)),
    "oraclelinux-9": ("Oracle Linux 9.4", "dnf", (3, 12)),
    "fedora-40": ("Fedora 40", "dnf", (3, 12)),
    "amzn-2": ("Amazon Linux 2", "yum", (3, 7)),
    "amzn-2023": ("Amazon Linux 2023", "dnf", (3, 9)),
    "opensuse-leap-15.6": ("openSUSE Leap 15.6", "suse", (3, 11)),
    "opensuse-tumbleweed": ("openSUSE Tumbleweed", "suse", (3, 13)),
    "sles-15.6": ("SLES 15.6", "suse", (3, 11)),
    "alpine-3.20": ("Alpine 3.20.3", "alpine", (3, 12)),
    "arch": ("Arch Linux", "arch", (3, 12)),
}


def release(name: str) -> OsRelease:
    return OsRelease.parse((DATA / "os-release" / name).read_text())


def rendered(name: str) -> str:
    python = CASES[name][2]
    return plan_layer("<base image>", release(name)).dockerfile(ipykernel_stack(python))


@pytest.mark.parametrize("name", sorted(CASES))
def test_dockerfile_matches_its_golden_file(name):
    golden = DATA / "dockerfiles" / f"{name}.Dockerfile"
    text = rendered(name)
    if os.environ.get("DK_REGEN_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_distro_gets_its_family_recipe_and_display_name(name):
    display, family, _ = CASES[name]
    assert release(name).display_name == display
    assert recipe_for(release(name)).family == family


def test_centos7_points_yum_at_the_vault_before_any_yum_call():
    text = rendered("centos-7")
    vault = text.index("baseurl=http://vault.centos.org/7.9.2009")
    assert vault < text.index("yum install")
    assert "#mirrorlist=" in text
    assert "ipykernel==5.5.6" in text and "pyzmq==25.1.2" in text


def test_el_prefers_the_newest_python_module_and_works_with_microdnf():
    text = rendered("almalinux-8")
    assert "command -v dnf || command -v microdnf" in text
    assert text.index("python3.12") < text.index("python3.11") < text.index("python39")
    # python3.11 gives /usr/bin/python3.11 only: nothing may insist on a plain python3.
    assert "command -v python3" not in text


def test_leap_prefers_python311_or_newer_over_its_python36():
    text = rendered("opensuse-leap-15.6")
    assert "zypper --non-interactive install --no-recommends" in text
    assert text.index("python311") < text.index(" python3;")
    assert "zypper clean --all" in text


def test_alpine_uses_apk_without_cache():
    assert "apk add --no-cache python3" in rendered("alpine-3.20")


def test_arch_uses_pacman_and_clears_its_cache():
    text = rendered("arch")
    assert "pacman -Sy --noconfirm --needed python" in text and "pacman -Scc" in text


def test_ubuntu_and_debian_use_apt_and_never_break_system_packages():
    for name in ("ubuntu-24.04", "debian-13"):
        text = rendered(name)
        assert "apt-get install -y --no-install-recommends python3" in text
        assert "break-system-packages" not in text


def test_python_pins_follow_the_python_each_distro_ships():
    assert "ipykernel==6.31.0" in rendered("debian-11")
    assert "ipykernel==7.3.0" in rendered("ubuntu-22.04")
    assert "ipykernel==6.16.2" in rendered("amzn-2")


def test_image_with_old_python_is_upgraded_only_where_the_archive_has_newer():
    leap = plan_layer("b", release("opensuse-leap-15.6"), "/usr/bin/python3", (3, 6))
    assert "python311" in leap.install_python
    centos = plan_layer("b", release("centos-7"), "/usr/bin/python3", (3, 6))
    assert centos.install_python == "" and centos.python_path == "/usr/bin/python3"
    recent = plan_layer("b", release("almalinux-8"), "/usr/bin/python3.11", (3, 11))
    assert recent.install_python == ""


@pytest.mark.parametrize("name", ["hello\n", "a;b", "$(id)", "-rf", "x y", ""])
def test_distro_package_names_that_could_reach_a_shell_are_refused(name):
    from distrokernels.errors import InvalidInput
    from distrokernels.recipes import validate_package_names

    with pytest.raises(InvalidInput):
        validate_package_names((name,))
