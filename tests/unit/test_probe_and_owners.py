"""Parsing the probe's output, and owner tokens for garbage collection (no engine)."""

import os
import signal
import socket
import subprocess
import time

from distrokernels import owners
from distrokernels.probe import parse_probe_output

DEBIAN = """@@os-release
ID=debian
VERSION_ID="12"
@@python
/usr/bin/python3 3.11.2
/usr/bin/python3.9 3.9.2
/usr/bin/python 2.7.18
@@libc
glibc 2.36
@@machine
x86_64
"""


def test_probe_reads_distro_python_libc_and_machine():
    probe = parse_probe_output(DEBIAN)
    assert probe.os_release.display_name == "Debian 12"
    assert probe.python_path == "/usr/bin/python3"
    assert probe.python == (3, 11)
    assert (probe.libc, probe.libc_version, probe.machine) == ("glibc", (2, 36), "x86_64")


def test_probe_prefers_the_newest_python3_on_path():
    probe = parse_probe_output("@@python\n/usr/bin/python3 3.6.8\n/usr/bin/python3.11 3.11.9\n")
    assert (probe.python_path, probe.python_full_version) == ("/usr/bin/python3.11", "3.11.9")


def test_probe_of_image_without_python_says_so():
    probe = parse_probe_output("@@os-release\nID=debian\n@@python\n@@libc\nglibc 2.36\n@@machine\n")
    assert not probe.has_python


def test_probe_recognises_musl():
    probe = parse_probe_output("@@os-release\nID=alpine\n@@python\n@@libc\nmusl 1.2\n@@machine\n")
    assert (probe.libc, probe.libc_version) == ("musl", (1, 2))


def test_this_process_is_a_live_owner():
    assert owners.owner_is_alive(owners.current_owner())


def test_owner_with_other_start_time_is_dead_even_if_pid_is_reused():
    host, pid, _ = owners.current_owner().split(":")
    assert not owners.owner_is_alive(f"{host}:{pid}:1")


def test_owner_on_another_host_is_never_collected():
    assert owners.owner_is_alive(f"not-{socket.gethostname()}:1:1")
    assert owners.owner_is_alive("garbage")


def test_a_killed_owner_not_yet_reaped_by_its_parent_is_dead():
    child = subprocess.Popen(["sleep", "30"])
    token = f"{socket.gethostname()}:{child.pid}:{owners.process_start_time(child.pid)}"
    assert owners.owner_is_alive(token)
    child.kill()
    deadline = time.monotonic() + 10
    while owners.owner_is_alive(token) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not owners.owner_is_alive(token)  # a zombie until the wait below
    assert child.wait(timeout=5) == -9


def test_the_child_of_a_process_is_found_as_a_containers_kernel_is_under_its_init():
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE)
    child = int(parent.stdout.readline())
    try:
        assert owners.first_child(parent.pid) == child
        assert owners.first_child(child) == 0  # sleep has none
    finally:
        os.kill(child, signal.SIGKILL)
        parent.wait()
