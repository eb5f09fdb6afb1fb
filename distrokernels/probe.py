"""Ask an image what it is: distro, Python interpreter, libc, architecture.

First, without running anything in it (``read_userland``): its architecture, libc and
the oldest kernel that libc supports, from the ELF files of its shell and libc, so that
hostkernel.py can say whether this host can run it at all. Then one short-lived
container with no network runs a POSIX shell script (``probe_image``); its output is
parsed here. Nothing is taken from the image's name.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from .distros import OsRelease
from .elf import ElfFile, parse_elf
from .engine import Engine
from .hostkernel import Userland
from .platforms import from_elf
from .wheels import Platform, python_version

_SHELL = "/bin/sh"
_LIBC = "libc.so.6"  # glibc's, beside its dynamic loader
_LIBC_ELSEWHERE = ("/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6")
_MAX_ELF = 32 * 2**20  # bytes read of one file at most (a libc is about 2 MB)

# Sections are separated by marker lines so that any output order parses.
PROBE_SCRIPT = r"""
echo '@@os-release'
cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo '@@python'
for candidate in python3 python3.14 python3.13 python3.12 python3.11 python3.10 python3.9 \
    python3.8 python3.7 python3.6 python; do
  path=$(command -v "$candidate" 2>/dev/null) || continue
  "$path" -c 'import sys; print("%s %d.%d.%d" % ((sys.executable,) + sys.version_info[:3]))' \
    2>/dev/null
done
echo '@@libc'
getconf GNU_LIBC_VERSION 2>/dev/null || (ls /lib/ld-musl-* >/dev/null 2>&1 && \
  (/lib/ld-musl-* 2>&1 | sed -n 's/^Version /musl /p'))
echo '@@machine'
uname -m
"""


@dataclass(frozen=True)
class Probe:
    os_release: OsRelease
    python_path: str  # '' when the image has no python3
    python_full_version: str  # '3.11.2', or ''
    libc: str  # 'glibc' or 'musl'
    libc_version: tuple[int, int]
    machine: str

    @property
    def has_python(self) -> bool:
        return bool(self.python_path)

    @property
    def python(self) -> tuple[int, int]:
        return python_version(self.python_full_version)

    def platform(self) -> Platform:
        return Platform(self.python_full_version, self.libc, self.libc_version, self.machine)


def parse_probe_output(text: str) -> Probe:
    """Parse PROBE_SCRIPT's output."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    python_path, python_full = _newest_python(sections.get("python", []))
    libc_line = " ".join(sections.get("libc", [])).strip()
    match = re.match(r"(glibc|musl)\s+(\d+)\.(\d+)", libc_line)
    libc, libc_version = (
        (match.group(1), (int(match.group(2)), int(match.group(3))))
        if match
        else (
            "glibc",
            (2, 17),
        )
    )
    machine = " ".join(sections.get("machine", [])).strip() or "x86_64"
    return Probe(
        os_release=OsRelease.parse("\n".join(sections.get("os-release", []))),
        python_path=python_path,
        python_full_version=python_full,
        libc=libc,
        libc_version=libc_version,
        machine=machine,
    )


def _newest_python(lines: list[str]) -> tuple[str, str]:
    """The newest Python 3 among 'path X.Y.Z' lines; ('', '') when there is none."""
    best: tuple[tuple[int, ...], str, str] | None = None
    for line in lines:
        path, _, version = line.strip().rpartition(" ")
        if path and re.fullmatch(r"3\.\d+\.\d+", version):
            numbers = tuple(int(part) for part in version.split("."))
            if best is None or numbers > best[0]:  # ties keep the first: plain python3
                best = (numbers, path, version)
    return (best[1], best[2]) if best else ("", "")


def probe_image(engine: Engine, image: str) -> Probe:
    """Probe ``image`` (a reference or id) in a throwaway container."""
    return parse_probe_output(engine.run_script(image, PROBE_SCRIPT))


def read_userland(engine: Engine, image: str) -> Userland:
    """The architecture and libc of ``image`` (a reference or id), from its files alone:
    its /bin/sh names the loader, the loader's folder holds glibc's libc.so.6."""
    shell = _read_elf(engine, image, [_SHELL])
    if shell is None:
        return Userland(None, "")
    arch = from_elf(shell[1].machine, shell[1].elf_class)
    interpreter = shell[1].interpreter
    if "ld-musl" in interpreter:
        return Userland(arch, "musl")
    if not interpreter:  # a static shell (busybox): no loader, no libc to read
        return Userland(arch, "")
    loader = _read_elf(engine, image, [interpreter])
    folder = posixpath.dirname(loader[0] if loader else interpreter)
    libc = _read_elf(engine, image, [posixpath.join(folder, _LIBC), *_LIBC_ELSEWHERE])
    if libc is None or libc[1].glibc is None:
        return Userland(arch, "glibc" if libc else "", min_kernel=shell[1].min_kernel)
    return Userland(arch, "glibc", libc[1].glibc, libc[1].min_kernel or shell[1].min_kernel)


def _read_elf(engine: Engine, image: str, paths: list[str]) -> tuple[str, ElfFile] | None:
    """The first of ``paths`` that is an ELF file in ``image``: (its real path, facts)."""
    found = engine.read_image_files(image, paths, _MAX_ELF)
    for path in paths:
        if path in found:
            real, content = found[path]
            try:
                return real, parse_elf(content)
            except ValueError:
                continue
    return None
