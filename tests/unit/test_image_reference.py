"""Image references and Debian suite names (no engine)."""

import pytest

from distrokernels.bootstrap import debian_suite
from distrokernels.checks import validate_reference
from distrokernels.engine.images import _split_tag
from distrokernels.errors import InvalidInput


@pytest.mark.parametrize(
    "reference",
    [
        "debian:bookworm",
        "ubuntu:22.04",
        "opensuse/leap:15.6",
        "registry.example.org:5000/team/image:tag",
        "127.0.0.1:9/nosuch:1",
        "centos@sha256:" + "a" * 64,
    ],
)
def test_well_formed_references_are_accepted(reference):
    assert validate_reference(reference) == reference


@pytest.mark.parametrize(
    "reference",
    [
        "",
        "Debian:Bookworm",
        "debian:bookworm\nRUN evil",
        "debian:bookworm\n",
        "$(id)",
        "a b",
        "../etc",
        "x" * 300,
    ],
)
def test_malformed_references_are_refused(reference):
    with pytest.raises(InvalidInput):
        validate_reference(reference)


@pytest.mark.parametrize(
    ("reference", "split"),
    [
        ("debian:bookworm", ("debian", "bookworm")),
        ("debian", ("debian", "latest")),
        ("localhost:5000/img", ("localhost:5000/img", "latest")),
        ("localhost:5000/img:1", ("localhost:5000/img", "1")),
    ],
)
def test_registry_port_is_not_mistaken_for_a_tag(reference, split):
    assert _split_tag(reference) == split


@pytest.mark.parametrize(
    ("reference", "suite"),
    [
        ("debian:bookworm", "bookworm"),
        ("debian:12", "bookworm"),
        ("debian:13", "trixie"),
        ("debian:11", "bullseye"),
        ("debian:sid", "sid"),
        ("ubuntu:22.04", ""),
        ("debian:9", ""),
    ],
)
def test_debian_suites_that_can_be_bootstrapped(reference, suite):
    assert debian_suite(reference) == suite
