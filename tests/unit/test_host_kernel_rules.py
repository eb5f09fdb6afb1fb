"""What the host's kernel can run: architectures' names, ELF facts, and the rules that
refuse an image before anything is built. Real ELF files and /proc texts of this
machine where it has them; crafted ones for what it cannot provide (an old glibc, a
kernel too new for this host, another byte order)."""

import json
import struct
from pathlib import Path

import pytest

from distrokernels import hostkernel, locks
from distrokernels.elf import parse_elf
from distrokernels.errors import InvalidInput
from distrokernels.hostkernel import BinfmtHandler, Host, Userland, findings
from distrokernels.platforms import (
    architecture,
    from_elf,
    needs_personality,
    official_repository,
    runs_natively,
)
from distrokernels.wheels import ipykernel_stack

AMD64, ARM64, I386 = architecture("linux/amd64"), architecture("linux/arm64"), architecture("386")
HOST_LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")
# Debian's qemu-user-static entry, as /proc/sys/fs/binfmt_misc/qemu-aarch64 shows it.
QEMU_AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""
VSYSCALL_XONLY = "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]\n"


def crafted_elf(
    machine: int, elf_class: int = 2, data: int = 1, abi: tuple = (3, 2, 0), banner: bytes = b""
) -> bytes:
    """An ELF file with one PT_NOTE segment holding a GNU ABI tag, then ``banner``."""
    order = "<" if data == 1 else ">"
    header_size, ph_size = (64, 56) if elf_class == 2 else (52, 32)
    note = struct.pack(order + "III", 4, 16, 1) + b"GNU\0" + struct.pack(order + "IIII", 0, *abi)
    note_at = header_size + ph_size
    ident = b"\x7fELF" + bytes([elf_class, data, 1]) + bytes(9)
    if elf_class == 2:
        header = ident + struct.pack(order + "HHIQQQIHHHHHH", 3, machine, 1, 0, header_size, 0,
                                     0, header_size, ph_size, 1, 64, 0, 0)  # fmt: skip
        program = struct.pack(order + "IIQQQQQQ", 4, 4, note_at, 0, 0, len(note), len(note), 4)
    else:
        header = ident + struct.pack(order + "HHIIIIIHHHHHH", 3, machine, 1, 0, header_size, 0,
                                     0, header_size, ph_size, 1, 40, 0, 0)  # fmt: skip
        program = struct.pack(order + "IIIIIIII", 4, note_at, 0, 0, len(note), len(note), 4, 4)
    return header + program + note + banner


def host(**facts) -> Host:
    handler = BinfmtHandler.parse("qemu-aarch64", QEMU_AARCH64)
    defaults = {"arch": AMD64, "kernel": (6, 1, 0), "vsyscall": "xonly", "binfmt": (handler,),
                "clone3": "ENOSYS"}  # fmt: skip
    return Host(**{**defaults, **facts})


def glibc(version: tuple, min_kernel: tuple = (3, 2, 0), arch=AMD64) -> Userland:
    return Userland(arch, "glibc", version, min_kernel)


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "platform"),
    [("linux/arm64", "linux/arm64"), ("aarch64", "linux/arm64"), ("arm64/v8", "linux/arm64"),
     ("arm/v7", "linux/arm/v7"), ("armhf", "linux/arm/v7"), ("386", "linux/386"),
     ("i686", "linux/386"), ("ppc64el", "linux/ppc64le"), ("S390X", "linux/s390x"),
     ("x86_64", "linux/amd64"), ("riscv64", "linux/riscv64")],
)  # fmt: skip
def test_every_spelling_of_an_architecture_names_one_platform(name, platform):
    assert architecture(name).platform == platform


def test_an_unknown_platform_is_refused_listing_the_known_ones():
    with pytest.raises(InvalidInput, match="linux/riscv64"):
        architecture("linux/mips64")


def test_a_foreign_official_base_lives_under_docker_hubs_per_architecture_name():
    assert official_repository("debian:bookworm", ARM64) == "arm64v8/debian:bookworm"
    assert official_repository("docker.io/library/ubuntu", I386) == "i386/ubuntu:latest"
    assert official_repository("myorg/base:1", ARM64) == ""  # not an official image


def test_i386_runs_natively_on_x86_64_under_the_32_bit_personality_and_arm64_does_not():
    assert runs_natively(AMD64, I386) and needs_personality(AMD64, I386)
    assert not runs_natively(AMD64, ARM64) and not needs_personality(AMD64, ARM64)
    assert not needs_personality(AMD64, AMD64)


def test_the_pinned_stack_is_an_upper_bound_where_its_wheels_are_not_known_to_exist():
    assert "ipykernel==7.4.0" in ipykernel_stack((3, 11), "aarch64")
    assert "ipykernel<=7.4.0" in ipykernel_stack((3, 11), "i686")


# --- ELF files ---------------------------------------------------------------------------


@pytest.mark.skipif(not HOST_LIBC.is_file(), reason="this host has no x86-64 Debian glibc")
def test_the_hosts_own_glibc_says_its_architecture_version_and_minimum_kernel():
    libc = parse_elf(HOST_LIBC.read_bytes())
    assert from_elf(libc.machine, libc.elf_class) == AMD64
    assert libc.glibc is not None and libc.glibc >= (2, 36)
    assert libc.min_kernel is not None and libc.min_kernel <= (3, 2, 0)
    assert libc.interpreter.endswith("ld-linux-x86-64.so.2")


def test_a_big_endian_32_bit_file_and_an_old_glibcs_banner_are_read():
    banner = b"\0GNU C Library stable release version 2.12, by Roland McGrath et al.\n"
    content = crafted_elf(22, elf_class=1, data=2, abi=(2, 6, 18), banner=banner)
    elf = parse_elf(content)
    assert (elf.machine, elf.elf_class, elf.data) == (22, 1, 2)
    assert elf.min_kernel == (2, 6, 18) and elf.glibc == (2, 12)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x7fELF", b"MZ" + bytes(100), crafted_elf(62)[:70], crafted_elf(62)[:-20]],
)
def test_a_truncated_or_foreign_file_is_a_value_error_not_a_crash(content):
    with pytest.raises(ValueError):
        parse_elf(content)


# --- the rules ---------------------------------------------------------------------------


@pytest.mark.skipif(not HOST_LIBC.is_file(), reason="this host has no x86-64 Debian glibc")
def test_the_real_debian_glibc_is_accepted_on_this_machine():
    libc = parse_elf(HOST_LIBC.read_bytes())
    userland = glibc(libc.glibc, libc.min_kernel)
    maps = Path("/proc/self/maps").read_text()
    real = host(kernel=hostkernel.release(Path("/proc/sys/kernel/osrelease").read_text()),
                vsyscall=hostkernel.vsyscall_mode(maps, ""))  # fmt: skip
    assert findings(userland, real, "debian:bookworm") == []


def test_a_glibc_newer_than_the_hosts_kernel_is_refused_saying_kernel_too_old():
    (finding,) = findings(glibc((2, 39), (6, 20, 0)), host(kernel=(3, 10, 0)), "ubuntu:24.04")
    assert "needs Linux 6.20.0" in finding.why and "3.10.0" in finding.why
    assert "kernel too old" in finding.why and finding.fix


def test_a_glibc_that_calls_vsyscall_is_refused_only_where_vsyscall_is_off():
    old = glibc((2, 12), (2, 6, 18))
    (finding,) = findings(old, host(vsyscall="none", clone3="EPERM"), "centos:6")
    assert "vsyscall" in finding.why and "vsyscall=emulate" in finding.fix
    assert findings(old, host(vsyscall="xonly"), "centos:6") == []
    assert findings(old, host(vsyscall="emulate"), "centos:6") == []


def test_clone3_is_refused_for_a_new_glibc_on_an_engine_that_answers_eperm():
    (finding,) = findings(glibc((2, 36)), host(clone3="EPERM"), "debian:bookworm")
    assert "clone3" in finding.why and "20.10.10" in finding.fix
    assert findings(glibc((2, 31)), host(clone3="EPERM"), "debian:bullseye") == []  # clone
    assert findings(glibc((2, 36)), host(clone3="ENOSYS"), "debian:bookworm") == []


def test_a_foreign_architecture_needs_an_enabled_binfmt_handler_with_the_f_flag():
    arm = glibc((2, 36), (3, 7, 0), ARM64)
    assert findings(arm, host(), "debian:bookworm") == []
    (none,) = findings(arm, host(binfmt=()), "debian:bookworm")
    assert "no binfmt handler runs aarch64" in none.why and "qemu-user-static" in none.fix
    (unmounted,) = findings(arm, host(binfmt=None), "debian:bookworm")
    assert "mount -t binfmt_misc" in unmounted.fix
    without_f = BinfmtHandler.parse("qemu-aarch64", QEMU_AARCH64.replace("PF", "P"))
    (flag,) = findings(arm, host(binfmt=(without_f,)), "debian:bookworm")
    assert "F flag" in flag.why
    disabled = BinfmtHandler.parse("qemu-aarch64", QEMU_AARCH64.replace("enabled", "disabled"))
    (off,) = findings(arm, host(binfmt=(disabled,)), "debian:bookworm")
    assert off.fix == "sudo update-binfmts --enable qemu-aarch64"
    assert findings(glibc((2, 36), arch=I386), host(binfmt=()), "i386/debian") == []


def test_a_handler_is_matched_by_its_magic_not_its_name():
    handler = BinfmtHandler.parse("whatever", QEMU_AARCH64)
    assert handler.runs(ARM64)
    assert not handler.runs(architecture("riscv64")) and not handler.runs(AMD64)


@pytest.mark.skipif(
    not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").is_file(),
    reason="no qemu-aarch64 binfmt handler registered on this machine",
)
def test_this_machines_registered_handlers_parse():
    folder = Path("/proc/sys/fs/binfmt_misc")
    handler = BinfmtHandler.parse("qemu-aarch64", (folder / "qemu-aarch64").read_text())
    assert handler is not None and handler.runs(ARM64)


def test_the_vsyscall_mode_comes_from_the_maps_else_the_command_line():
    assert hostkernel.vsyscall_mode(VSYSCALL_XONLY, "") == "xonly"
    assert hostkernel.vsyscall_mode(VSYSCALL_XONLY.replace("--xp", "r-xp"), "") == "emulate"
    assert hostkernel.vsyscall_mode("00400000-00452000 r-xp 0 08:02 173521 /bin/cat\n", "") == (
        "none"
    )
    assert hostkernel.vsyscall_mode("", "quiet vsyscall=none ro") == "none"


def test_a_seccomp_profiles_answer_to_clone3():
    fixed = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}  # fmt: skip
    old = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [fixed["syscalls"][1]]}
    capped = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["clone3"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
    ]}  # fmt: skip
    assert hostkernel.clone3_answer(fixed) == "ENOSYS"
    assert hostkernel.clone3_answer(old) == "EPERM"
    assert hostkernel.clone3_answer(capped) == "EPERM"  # only with a capability kernels lack
    assert hostkernel.clone3_answer({"defaultAction": "SCMP_ACT_ALLOW"}) == "allowed"


def test_dockers_default_profile_answers_eperm_before_20_10_10(tmp_path):
    def info(version, options=("name=seccomp,profile=default",)):
        return {"ServerVersion": version, "SecurityOptions": list(options)}

    assert hostkernel.engine_clone3(info("20.10.9"), podman=False, local=True) == "EPERM"
    assert hostkernel.engine_clone3(info("20.10.24+dfsg1"), podman=False, local=True) == "ENOSYS"
    assert hostkernel.engine_clone3(info("24.0.7", ["name=apparmor"]), False, True) == "allowed"
    custom = tmp_path / "seccomp.json"
    custom.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO"}))
    options = [f"name=seccomp,profile={custom}"]
    assert hostkernel.engine_clone3(info("26.0", options), podman=False, local=True) == "EPERM"
    assert hostkernel.engine_clone3(info("26.0", options), podman=False, local=False) == ""


def test_kernel_releases_of_every_shape_parse():
    assert hostkernel.release("3.10.0-1160.el7.x86_64") == (3, 10, 0)
    assert hostkernel.release("6.18.44-fc-v1045") == (6, 18, 44)
    assert hostkernel.release("5.15") == (5, 15, 0)


def test_a_lock_records_a_foreign_platform_and_older_locks_mean_amd64():
    args = ("debian:bookworm", "sha256:" + "a" * 64, "", "3.11.2", [], [], (), (), {})
    assert locks.make_lock(*args).platform == "linux/amd64"
    assert "platform" not in locks.make_lock(*args).data["base"]  # older digests unchanged
    arm = locks.make_lock(*args, platform="linux/arm64")
    assert locks.Lock.from_text(arm.to_text()).platform == "linux/arm64"
    data = json.loads(arm.to_text())
    data["base"]["platform"] = "linux/vax"
    with pytest.raises(InvalidInput, match="not a platform"):
        locks.Lock.from_data(data)
