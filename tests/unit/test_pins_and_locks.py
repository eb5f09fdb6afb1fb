"""A pin is data from someone else: a notebook's pin and its lock, checked as data.

Every refusal here happens before anything is built or installed (the integration
tests in test_pins.py prove that end to end with `distrokernels sync`).
"""

import copy

import pytest

from distrokernels import locks
from distrokernels.errors import InvalidInput
from distrokernels.pins import PIN_VERSION, Pin
from distrokernels.wheels import Wheel

SHA = "a" * 64
LOCK = locks.make_lock(
    "debian:bookworm",
    "sha256:" + "1" * 64,
    "",
    "3.11.2",
    [Wheel("ipykernel-7.4.0-py3-none-any.whl", SHA)],
    [],
    ("numpy==2.1.0",),
    ("hello",),
    {"python3": "3.11.2-1+b1", "libc6": "2.36-9+deb12u10"},
)


def pin_metadata(**change) -> dict:
    metadata = Pin("distro-debian-12", "Python 3.11 (Debian 12)", LOCK).to_metadata(
        __import__("pathlib").Path("lesson.ipynb")
    )
    return {**copy.deepcopy(metadata), **change}


def test_a_pin_round_trips_through_notebook_metadata():
    pin = Pin.from_metadata(pin_metadata(), "lesson.ipynb")
    assert pin.kernelspec == "distro-debian-12"
    assert pin.digest == LOCK.content_digest
    assert pin_metadata()["install"] == "distrokernels sync lesson.ipynb"


def test_the_content_digest_ignores_the_base_images_machine_specific_id():
    elsewhere = copy.deepcopy(LOCK.data)
    elsewhere["base"]["id"] = "sha256:" + "2" * 64  # the same suite bootstrapped elsewhere
    assert locks.Lock(elsewhere).content_digest == LOCK.content_digest
    assert locks.Lock(elsewhere).digest != LOCK.digest
    moved = copy.deepcopy(LOCK.data)
    moved["distro_packages"]["libc6"] = "2.36-9+deb12u11"  # a point release later
    assert locks.Lock(moved).content_digest != LOCK.content_digest


def hostile(path: list, value) -> dict:
    metadata = pin_metadata()
    target = metadata
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return metadata


HOSTILE = {
    "unknown pin version": hostile(["version"], 99),
    "unknown lock version": hostile(["lock", "version"], 2),
    "kernelspec name with a shell": hostile(["kernelspec"], "x; rm -rf ~"),
    "two-line display name": hostile(["display_name"], "a\nb"),
    "distro package with a shell": hostile(["lock", "extras", "packages"], ["hello; id"]),
    "distro package version with a shell": hostile(
        ["lock", "distro_packages"], {"python3": "$(id)"}
    ),
    "pip option as an extra": hostile(["lock", "extras", "pip"], ["--index-url=http://x"]),
    "wheel name with a newline": hostile(
        ["lock", "wheels"], [{"filename": "a.whl\n--index-url http://x", "sha256": SHA}]
    ),
    "wheel sha256 that is not one": hostile(
        ["lock", "wheels"], [{"filename": "a-1-py3-none-any.whl", "sha256": "abc"}]
    ),
    "base reference with a shell": hostile(["lock", "base", "reference"], "debian;id"),
    "base id that is not one": hostile(["lock", "base", "id"], "latest"),
    "lock of the wrong shape": hostile(["lock", "wheels"], "everything"),
    "digest that is not its lock's": hostile(["lock_digest"], "sha256:" + "0" * 64),
}


@pytest.mark.parametrize("metadata", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_malformed_or_hostile_pin_is_one_line_of_invalid_input(metadata):
    with pytest.raises(InvalidInput) as refused:
        Pin.from_metadata(metadata, "lesson.ipynb")
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("lesson.ipynb")


def test_a_pin_of_a_later_version_says_which_version_it_reads():
    with pytest.raises(InvalidInput, match=f"version {PIN_VERSION}"):
        Pin.from_metadata({"version": 2}, "lesson.ipynb")


def test_what_moved_between_two_locks_is_named_package_by_package():
    moved = copy.deepcopy(LOCK.data)
    moved["wheels"] = [
        {"filename": "ipykernel-7.4.1-py3-none-any.whl", "sha256": SHA},
        {"filename": "platformdirs-4.14.9-py3-none-any.whl", "sha256": SHA},
    ]
    moved["distro_packages"]["libc6"] = "2.36-9+deb12u11"
    del moved["distro_packages"]["python3"]
    assert locks.differences(LOCK, locks.Lock(moved), same_base_id=False) == [
        "ipykernel 7.4.0 -> 7.4.1",
        "platformdirs 4.14.9 was added",
        "distro package libc6 2.36-9+deb12u10 -> 2.36-9+deb12u11",
        "distro package python3 3.11.2-1+b1 -> absent",
    ]
