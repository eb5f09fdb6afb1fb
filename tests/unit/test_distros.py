"""os-release parsing and the names derived from it (no engine)."""

from pathlib import Path

import pytest

from distrokernels.distros import OsRelease, slugify

DATA = Path(__file__).parent.parent / "data" / "os-release"


def parse(name: str) -> OsRelease:
    return OsRelease.parse((DATA / name).read_text())


@pytest.mark.parametrize(
    ("file", "display", "slug", "family"),
    [
        ("debian-12", "Debian 12", "debian-12", "debian"),
        ("ubuntu-22.04", "Ubuntu 22.04", "ubuntu-22.04", "debian"),
        ("centos-7", "CentOS 7", "centos-7", "rhel"),
        ("opensuse-leap-15.6", "openSUSE Leap 15.6", "opensuse-leap-15.6", "suse"),
        ("alpine-3.20", "Alpine 3.20.3", "alpine-3.20.3", "alpine"),
        ("arch", "Arch Linux", "arch", "arch"),
        ("debian-sid", "Debian trixie", "debian-trixie", "debian"),
    ],
)
def test_real_os_release_files_give_display_name_slug_and_family(file, display, slug, family):
    release = parse(file)
    assert release.display_name == display
    assert release.slug == slug
    assert release.family == family


def test_quoted_values_and_comments_are_parsed_like_a_shell():
    release = OsRelease.parse('# comment\nID="my distro"\nPRETTY_NAME=\'It\\\'s "odd"\'\nBROKEN\n')
    assert release.id == "my distro"
    assert release.slug == "my-distro"


def test_unknown_distro_has_no_family_but_still_a_name():
    release = OsRelease.parse("ID=plan9\nNAME=Plan9\nVERSION_ID=4\n")
    assert release.family == ""
    assert release.display_name == "Plan9 4"


def test_missing_id_falls_back_to_linux():
    assert OsRelease.parse("").id == "linux"


@pytest.mark.parametrize("text", ["../../etc", "a b$(rm -rf)", "", "UPPER_case"])
def test_slugify_keeps_only_safe_characters(text):
    slug = slugify(text)
    assert slug and all(c.isalnum() or c in ".-" for c in slug)
    assert not slug.startswith((".", "-"))


def test_a_failed_bootstrap_says_the_tools_own_error_not_only_its_last_lines():
    from distrokernels.bootstrap import first_error

    output = (
        "I: automatically chosen mode: root\n"
        "Get:1 http://deb.debian.org/debian sid InRelease [198 kB]\n"
        "E: Release file for http://deb.debian.org/debian/dists/sid/InRelease is expired "
        "(invalid since 2d 3h). Updates for this repository will not be applied.\n"
        "E: apt-get update -oAPT::Status-Fd=<$fd> -oDpkg::Use-Pty=false failed\n"
        "I: main() received signal PIPE: waiting for setup...\n"
        "I: removing tempdir /tmp/mmdebstrap.abc...\n"
    )
    assert first_error(output).startswith("E: Release file for http://deb.debian.org")
    assert "is expired" in first_error(output)
    assert first_error("one\ntwo\n") == "one | two"
