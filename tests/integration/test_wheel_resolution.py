"""Every pinned ipykernel stack resolves to wheels on the host for its oldest platform.

This asks the package index (the host's pip configuration), no container involved.
"""

import pytest

from distrokernels.wheels import (
    Platform,
    download_wheels,
    ipykernel_stack,
    missing_requirements,
    pinned_version,
)

# (Python as the distro ships it, libc, the distro it stands for)
PLATFORMS = [
    ("3.6.8", "glibc", (2, 17)),  # CentOS 7: old glibc, so no manylinux_2_28 wheels
    ("3.7.16", "glibc", (2, 26)),  # Amazon Linux 2
    ("3.9.2", "glibc", (2, 31)),  # Debian 11
    ("3.10.12", "glibc", (2, 35)),  # Ubuntu 22.04
    ("3.12.7", "musl", (1, 2)),  # Alpine 3.20
    ("3.13.5", "glibc", (2, 41)),  # Debian 13
]


@pytest.mark.parametrize(("python", "libc", "libc_version"), PLATFORMS)
def test_stack_resolves_to_wheels_the_image_can_load(python, libc, libc_version, tmp_path):
    platform = Platform(python, libc, libc_version, "x86_64")
    requirements = ipykernel_stack(platform.python)
    wheels = download_wheels(requirements, platform, tmp_path)
    names = {wheel.name.lower(): wheel for wheel in wheels}
    assert names["ipykernel"].version == pinned_version(requirements, "ipykernel")
    assert "pyzmq" in names and "pip" in names
    assert missing_requirements(tmp_path, platform) == ()
    tags = set(platform.pip_platforms())
    for wheel in wheels:
        wheel_platforms = wheel.filename[:-4].split("-")[-1].split(".")
        assert wheel_platforms == ["any"] or tags & set(wheel_platforms), wheel.filename
        assert len(wheel.sha256) == 64
