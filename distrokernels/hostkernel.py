"""Whether the host's kernel can run an image's userland, decided before anything runs.

A container keeps the host's kernel, so some userlands cannot run on some hosts, and a
user would learn it from a segfault or a kernel that dies at start. The rules here
compare what an image's files say (its ``Userland``: architecture, libc and the oldest
kernel that libc supports, read from ELF files without running them) with what the
engine's host says (its ``Host``: architecture, kernel release, vsyscall mode, binfmt
handlers, the seccomp profile's answer to ``clone3``). Each broken rule is one
``Finding``: why, in one line, and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .engine import Engine, remote_address
from .platforms import Architecture, architecture, from_engine, runs_natively

# Docker's default seccomp profile answers clone3 with ENOSYS (so glibc falls back to
# clone) from 20.10.10 on; before, with EPERM, which breaks threads in glibc 2.34+.
_DOCKER_CLONE3_FIXED = (20, 10, 10)
_GLIBC_CLONE3 = (2, 34)  # the first glibc whose pthread_create calls clone3
_GLIBC_WITHOUT_VSYSCALL = (2, 14)  # older glibc calls the legacy vsyscall page
_ENOSYS = 38
_PODMAN_PROFILE = "/usr/share/containers/seccomp.json"  # containers-common's default
_BINFMT_FIX = "sudo apt-get install qemu-user-static binfmt-support (Debian, Ubuntu)"


@dataclass(frozen=True)
class Userland:
    """What an image's ELF files say, without running any of them."""

    arch: Architecture | None  # None: an architecture not in platforms.ARCHITECTURES
    libc: str  # 'glibc', 'musl', or '' when none was found
    libc_version: tuple[int, int] | None = None
    min_kernel: tuple[int, int, int] | None = None  # glibc's ABI tag


@dataclass(frozen=True)
class BinfmtHandler:
    """One entry of /proc/sys/fs/binfmt_misc."""

    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes

    @classmethod
    def parse(cls, name: str, text: str) -> BinfmtHandler | None:
        """An entry's file; None for an extension (not a magic) handler or a broken one."""
        fields: dict[str, str] = {}
        enabled = False
        for line in text.splitlines():
            if line.strip() == "enabled":
                enabled = True
            key, _, value = line.partition(" ")
            fields[key.rstrip(":")] = value.strip()
        try:
            magic = bytes.fromhex(fields["magic"])
            mask = bytes.fromhex(fields.get("mask", "ff" * len(magic)))
            offset = int(fields.get("offset", "0"))
        except (KeyError, ValueError):
            return None
        return cls(name, enabled, fields.get("interpreter", ""), fields.get("flags", ""),
                   offset, magic, mask)  # fmt: skip

    def runs(self, arch: Architecture) -> bool:
        """Whether this handler matches ``arch``'s executables, fixed-address or
        position-independent (by its magic and mask, not by its name)."""
        return any(self._matches(elf_header(arch, kind)) for kind in (2, 3))

    def _matches(self, header: bytes) -> bool:
        if self.offset + len(self.magic) > len(header) or len(self.mask) < len(self.magic):
            return False
        return all(
            header[self.offset + i] & self.mask[i] == self.magic[i] & self.mask[i]
            for i in range(len(self.magic))
        )


def elf_header(arch: Architecture, kind: int = 2) -> bytes:
    """The first 20 bytes of an executable of ``arch`` (e_type ``kind``: 2 EXEC, 3 DYN)."""
    order: Literal["little", "big"] = "little" if arch.elf_data == 1 else "big"
    ident = bytes([0x7F, 0x45, 0x4C, 0x46, arch.elf_class, arch.elf_data, 1]) + bytes(9)
    return ident + kind.to_bytes(2, order) + arch.elf_machine.to_bytes(2, order)


@dataclass(frozen=True)
class Host:
    """What the engine's host allows."""

    arch: Architecture
    kernel: tuple[int, int, int]
    vsyscall: str = ""  # 'emulate', 'xonly', 'none'; '' where unknown or not x86-64
    binfmt: tuple[BinfmtHandler, ...] | None = None  # None: binfmt_misc unreadable here
    binfmt_enabled: bool = True
    clone3: str = ""  # 'allowed', 'ENOSYS', 'EPERM' (or another errno); '' unknown
    engine: str = "the engine"  # for messages: 'Docker 20.10.24'

    def handler_for(self, arch: Architecture) -> BinfmtHandler | None:
        """The registered handler that runs ``arch``'s executables, if any."""
        for handler in self.binfmt or ():
            if handler.runs(arch):
                return handler
        return None


@dataclass(frozen=True)
class Finding:
    """One rule the image breaks on this host: why, and what would fix it."""

    why: str
    fix: str
    fatal: bool = True

    def line(self) -> str:
        return f"{self.why}: {self.fix}"


def findings(userland: Userland, host: Host, name: str) -> list[Finding]:
    """Every rule ``name``'s ``userland`` breaks on ``host``; [] when it can run there."""
    found = [*_architecture(userland, host, name)]
    if userland.libc != "glibc":
        return found
    if userland.min_kernel and host.kernel < userland.min_kernel:
        found.append(
            Finding(
                f"{name}'s glibc needs Linux {_dotted(userland.min_kernel)} or newer and this "
                f"host runs {_dotted(host.kernel)} (it would die with 'FATAL: kernel too old')",
                "use an older release of that distro, or a host with a newer kernel",
            )
        )
    version = userland.libc_version
    needs_vsyscall = userland.arch is not None and userland.arch.label == "amd64"
    if version and version < _GLIBC_WITHOUT_VSYSCALL and needs_vsyscall and host.vsyscall == "none":
        found.append(
            Finding(
                f"{name}'s glibc {_dotted(version)} calls the vsyscall page, which this "
                "host's kernel has switched off (vsyscall=none): its programs would crash",
                "boot the host with vsyscall=emulate (or xonly) on the kernel command line",
            )
        )
    if version and version >= _GLIBC_CLONE3 and host.clone3 not in ("", "allowed", "ENOSYS"):
        found.append(
            Finding(
                f"{name}'s glibc {_dotted(version)} starts threads with clone3, which "
                f"{host.engine}'s seccomp profile answers with {host.clone3}: threads would fail",
                "upgrade the engine (Docker 20.10.10 or newer answers ENOSYS), or give it a "
                "seccomp profile that answers clone3 with ENOSYS",
            )
        )
    return found


def _architecture(userland: Userland, host: Host, name: str) -> list[Finding]:
    arch = userland.arch
    if arch is None or runs_natively(host.arch, arch):
        return []
    what = f"{name} is {arch.label} ({arch.machine}) and this host is {host.arch.label}"
    if host.binfmt is None:
        return [Finding(f"{what}, and binfmt_misc is not mounted to run it under emulation",
                        "sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; "
                        f"then {_BINFMT_FIX}")]  # fmt: skip
    handler = host.handler_for(arch)
    if handler is None:
        return [Finding(f"{what}, and no binfmt handler runs {arch.machine} programs",
                        f"register one: {_BINFMT_FIX}")]  # fmt: skip
    if not host.binfmt_enabled or not handler.enabled:
        switch = "binfmt_misc" if not host.binfmt_enabled else f"the handler {handler.name}"
        return [Finding(f"{what}, and {switch} is switched off",
                        f"sudo update-binfmts --enable {handler.name}")]  # fmt: skip
    if "F" not in handler.flags:
        return [Finding(f"{what}, and its binfmt handler {handler.name} lacks the F flag, so "
                        f"containers cannot reach {handler.interpreter}",
                        f"re-register it with the F flag: {_BINFMT_FIX}")]  # fmt: skip
    return []


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


# --- the host's facts --------------------------------------------------------------------


def release(text: str) -> tuple[int, int, int]:
    """'6.1.0-18-amd64' -> (6, 1, 0); '3.10.0-1160.el7.x86_64' -> (3, 10, 0)."""
    numbers = [int(part) for part in re.findall(r"\d+", text.split("-")[0])[:3]]
    return (*numbers, 0, 0, 0)[:3]  # type: ignore[return-value]


def vsyscall_mode(maps: str, cmdline: str) -> str:
    """The vsyscall page's mode from /proc/self/maps (``--xp``: xonly, ``r-xp``:
    emulate, absent: none), or the kernel command line's ``vsyscall=`` when maps is ''."""
    for line in maps.splitlines():
        if line.rstrip().endswith("[vsyscall]"):
            permissions = line.split()[1] if len(line.split()) > 1 else ""
            return "emulate" if permissions.startswith("r") else "xonly"
    if maps:
        return "none"
    match = re.search(r"(?:^|\s)vsyscall=(\w+)", cmdline)
    return match.group(1) if match else ""


def clone3_answer(profile: dict[str, Any]) -> str:
    """What a seccomp profile (Docker's or Podman's JSON) answers ``clone3`` with:
    'allowed', 'ENOSYS', 'EPERM' or 'errno N'."""
    for rule in profile.get("syscalls") or []:
        names = list(rule.get("names") or []) + ([rule["name"]] if "name" in rule else [])
        if "clone3" in names and not rule.get("args") and not _conditional(rule):
            return _answer(str(rule.get("action", "")), rule.get("errnoRet"))
    return _answer(str(profile.get("defaultAction", "")), profile.get("defaultErrnoRet"))


def _conditional(rule: dict[str, Any]) -> bool:
    """A rule that applies only with some capability or on some architecture."""
    includes = rule.get("includes") or {}
    return bool(includes.get("caps") or includes.get("minKernel"))


def _answer(action: str, errno: Any) -> str:
    if action in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", ""):
        return "allowed"
    if action == "SCMP_ACT_ERRNO":
        number = int(errno) if isinstance(errno, int) else 1  # libseccomp's default: EPERM
        return {1: "EPERM", _ENOSYS: "ENOSYS"}.get(number, f"errno {number}")
    return action.removeprefix("SCMP_ACT_")


def engine_clone3(info: dict[str, Any], podman: bool, local: bool) -> str:
    """The engine's seccomp answer to clone3, from its info: 'allowed' without seccomp;
    Docker's default profile by Docker's version; a profile file (a custom one, Podman's)
    by its rules when it is on this machine; '' when it cannot be known."""
    options = info.get("SecurityOptions")
    if options is None:
        return ""
    match = re.search(r"name=seccomp(?:,profile=([^ ,]+))?", " ".join(options))
    if not match:
        return "allowed"
    profile = match.group(1) or "default"
    if profile in ("default", "builtin") and not podman:
        fixed = release(str(info.get("ServerVersion", ""))) >= _DOCKER_CLONE3_FIXED
        return "ENOSYS" if fixed else "EPERM"
    if profile in ("default", "builtin"):
        profile = _PODMAN_PROFILE
    if not local:
        return ""
    try:
        return clone3_answer(json.loads(Path(profile).read_text()))
    except (OSError, ValueError, TypeError, AttributeError):
        return ""


def read_host(info: dict[str, Any], podman: bool, local: bool, proc: Path = Path("/proc")) -> Host:
    """The engine's host, from the engine's info; binfmt and vsyscall from ``proc``
    when the engine runs on this machine (unknown for a remote one)."""
    arch = from_engine(str(info.get("Architecture", ""))) or architecture("amd64")
    binfmt: tuple[BinfmtHandler, ...] | None = None
    enabled, vsyscall = True, ""
    if local:
        folder = proc / "sys/fs/binfmt_misc"
        if (folder / "status").is_file():
            enabled = _read(folder / "status").strip() == "enabled"
            entries = [
                BinfmtHandler.parse(entry.name, _read(entry))
                for entry in sorted(folder.iterdir())
                if entry.name not in ("status", "register")
            ]
            binfmt = tuple(entry for entry in entries if entry is not None)
        if arch.label == "amd64":
            vsyscall = vsyscall_mode(_read(proc / "self/maps"), _read(proc / "cmdline"))
    version = str(info.get("ServerVersion", ""))
    return Host(
        arch=arch,
        kernel=release(str(info.get("KernelVersion", ""))),
        vsyscall=vsyscall,
        binfmt=binfmt,
        binfmt_enabled=enabled,
        clone3=engine_clone3(info, podman, local),
        engine=f"{'Podman' if podman else 'Docker'} {version}".strip(),
    )


def engine_host(engine: Engine, url: str) -> Host:
    """``read_host`` of the engine at ``url``: /proc is read only when it is this machine."""
    return read_host(engine.info(), engine.podman is not None, not remote_address(url))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
