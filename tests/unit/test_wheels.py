"""Python-version pins and wheel platform tags (no engine, no network)."""

import pytest

from distrokernels.errors import WheelResolutionFailed
from distrokernels.wheels import Platform, ipykernel_stack, pinned_version, python_version


@pytest.mark.parametrize(
    ("python", "ipykernel"),
    [
        ((3, 6), "5.5.6"),
        ((3, 7), "6.16.2"),
        ((3, 8), "6.29.5"),
        ((3, 9), "6.31.0"),
        ((3, 10), "7.3.0"),
        ((3, 11), "7.4.0"),
        ((3, 13), "7.4.0"),
    ],
)
def test_newest_ipykernel_that_supports_each_python(python, ipykernel):
    assert pinned_version(ipykernel_stack(python), "ipykernel") == ipykernel


def test_python_36_gets_the_old_stack_pinned_whole():
    stack = ipykernel_stack((3, 6))
    assert pinned_version(stack, "pyzmq") == "25.1.2"
    assert pinned_version(stack, "traitlets") == "4.3.3"


def test_python_older_than_any_ipykernel_is_a_clear_error():
    with pytest.raises(WheelResolutionFailed, match=r"3\.5"):
        ipykernel_stack((3, 5))


def test_glibc_platform_lists_every_manylinux_tag_down_to_2_5():
    tags = Platform("3.11.2", "glibc", (2, 36), "amd64").pip_platforms()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_28_x86_64" in tags
    assert "manylinux2014_x86_64" in tags and "manylinux1_x86_64" in tags


def test_centos7_glibc_217_never_accepts_manylinux_2_28_wheels():
    tags = Platform("3.6.8", "glibc", (2, 17), "x86_64").pip_platforms()
    assert "manylinux_2_28_x86_64" not in tags
    assert "manylinux_2_17_x86_64" in tags


def test_musl_platform_uses_musllinux_tags_only():
    tags = Platform("3.12.7", "musl", (1, 2), "aarch64").pip_platforms()
    assert tags == ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64"]


def test_python_version_parses_full_and_short_versions():
    assert python_version("3.11.2") == (3, 11)
    assert python_version("3.6") == (3, 6)
    with pytest.raises(ValueError):
        python_version("three")


def _fake_wheel(folder, name, version, requires=()):
    import zipfile

    path = folder / f"{name}-{version}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {line}\n" for line in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    return path


def test_dependencies_are_judged_by_the_image_python_not_the_hosts(tmp_path):
    from distrokernels.wheels import missing_requirements

    _fake_wheel(
        tmp_path,
        "jupyter_client",
        "8.6.3",
        [
            'importlib-metadata>=4.8.3; python_version < "3.10"',
            "pyzmq>=23",
            'pytest; extra == "test"',
            'pywin32; sys_platform == "win32"',
        ],
    )
    _fake_wheel(tmp_path, "pyzmq", "27.0.0")
    old = Platform("3.9.2", "glibc", (2, 31), "x86_64")
    new = Platform("3.11.2", "glibc", (2, 36), "x86_64")
    assert missing_requirements(tmp_path, old) == ("importlib-metadata>=4.8.3",)
    assert missing_requirements(tmp_path, new) == ()
