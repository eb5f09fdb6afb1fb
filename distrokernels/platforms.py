"""CPU architectures a kernel's userland can be built for, and every name each one has.

One architecture is spelled differently by each tool: ``linux/arm64`` for the engine,
``arm64`` for Debian, ``aarch64`` for uname and wheel tags, ``arm64v8`` for Docker Hub's
per-architecture repositories, 183 in an ELF header. This table is the one place that
knows them all; nothing else guesses an architecture from a name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidInput


@dataclass(frozen=True)
class Architecture:
    """One CPU architecture, as each tool names it."""

    platform: str  # the engine's platform: 'linux/arm64', 'linux/arm/v7'
    label: str  # what a display name shows: 'arm64'
    debian: str  # dpkg's and mmdebstrap's name: 'arm64', 'armhf', 'ppc64el'
    machine: str  # uname -m and platform.machine() in the userland: 'aarch64'
    wheel: str  # the architecture in wheel tags: 'aarch64', 'i686'
    namespace: str  # Docker Hub's repositories of official images for it: 'arm64v8'
    elf_machine: int  # e_machine of its ELF files
    elf_class: int  # 1: 32-bit, 2: 64-bit
    elf_data: int  # 1: little-endian, 2: big-endian

    @property
    def docker_arch(self) -> str:
        """The engine's 'Architecture' of an image: 'arm64', 'arm', '386'."""
        return self.platform.split("/")[1]

    @property
    def variant(self) -> str:
        """The engine's 'Variant': 'v7' for linux/arm/v7, 'v8' for arm64, else ''."""
        parts = self.platform.split("/")
        return parts[2] if len(parts) > 2 else ("v8" if self.label == "arm64" else "")


ARCHITECTURES = (
    Architecture("linux/amd64", "amd64", "amd64", "x86_64", "x86_64", "amd64", 62, 2, 1),
    Architecture("linux/386", "i386", "i386", "i686", "i686", "i386", 3, 1, 1),
    Architecture("linux/arm64", "arm64", "arm64", "aarch64", "aarch64", "arm64v8", 183, 2, 1),
    Architecture("linux/arm/v7", "armhf", "armhf", "armv7l", "armv7l", "arm32v7", 40, 1, 1),
    Architecture("linux/ppc64le", "ppc64le", "ppc64el", "ppc64le", "ppc64le", "ppc64le", 21, 2, 1),
    Architecture("linux/s390x", "s390x", "s390x", "s390x", "s390x", "s390x", 22, 2, 2),
    Architecture("linux/riscv64", "riscv64", "riscv64", "riscv64", "riscv64", "riscv64", 243, 2, 1),
)

# Other spellings users and engines write, to the platform string above.
_ALIASES = {
    "x86_64": "linux/amd64",
    "x86-64": "linux/amd64",
    "i686": "linux/386",
    "i386": "linux/386",
    "386": "linux/386",
    "aarch64": "linux/arm64",
    "arm64/v8": "linux/arm64",
    "linux/arm64/v8": "linux/arm64",
    "armhf": "linux/arm/v7",
    "armv7l": "linux/arm/v7",
    "arm": "linux/arm/v7",
    "linux/arm": "linux/arm/v7",
    "ppc64el": "linux/ppc64le",
}

# An architecture a host runs without emulation besides its own: 32-bit x86 on x86-64.
_RUNS_NATIVELY = {"linux/amd64": {"linux/386"}}


def architecture(name: str) -> Architecture:
    """The architecture ``name`` means: 'linux/arm64', 'arm64', 'aarch64', 'arm/v7', '386'..."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    for arch in ARCHITECTURES:
        if key in (arch.platform, arch.platform.removeprefix("linux/"), arch.label, arch.debian):
            return arch
    raise InvalidInput(
        f"{name!r} is not a platform distrokernels builds for",
        f"use one of: {', '.join(arch.platform for arch in ARCHITECTURES)}",
    )


def from_elf(machine: int, elf_class: int) -> Architecture | None:
    """The architecture of an ELF file's header, or None for one not in the table."""
    for arch in ARCHITECTURES:
        if arch.elf_machine == machine and arch.elf_class == elf_class:
            return arch
    return None


def from_engine(architecture_name: str, variant: str = "") -> Architecture | None:
    """An image's or engine's 'Architecture' ('amd64', 'x86_64', 'arm64', 'arm' + 'v7')."""
    name = f"{architecture_name}/{variant}" if variant and architecture_name == "arm" else ""
    for candidate in (name, architecture_name):
        if candidate:
            try:
                return architecture(candidate)
            except InvalidInput:
                continue
    return None


def runs_natively(host: Architecture, arch: Architecture) -> bool:
    """Whether ``host``'s kernel runs ``arch``'s programs without a binfmt handler."""
    return arch == host or arch.platform in _RUNS_NATIVELY.get(host.platform, set())


def needs_personality(host: Architecture, arch: Architecture) -> bool:
    """Whether the kernel runs under the 32-bit personality, so that uname (and
    ``platform.machine()``) says the userland's machine, not the host's: i386 on x86-64."""
    return arch != host and arch.elf_class == 1 and runs_natively(host, arch)


def official_repository(reference: str, arch: Architecture) -> str:
    """Docker Hub's per-architecture name of an official image ('debian:bookworm' ->
    'arm64v8/debian:bookworm'), where a foreign base lives beside the native one; '' for
    an image that is not an official one."""
    name = reference.removeprefix("docker.io/").removeprefix("library/")
    if "/" in name.split(":")[0] or "@" in name:
        return ""
    return f"{arch.namespace}/{name if ':' in name else name + ':latest'}"
