"""Ask an image what it is: distro, Python interpreter, libc, architecture.

One short-lived container with no network runs a POSIX shell script; its output is
parsed here. Nothing is taken from the image's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .distros import OsRelease
from .engine import Engine
from .wheels import Platform, python_version

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
