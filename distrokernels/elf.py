"""What an ELF file says about the userland it belongs to, read without running it.

The header gives the CPU architecture; ``PT_INTERP`` names the dynamic loader (glibc's
``ld-linux*`` or musl's ``ld-musl-*``); glibc's ``NT_GNU_ABI_TAG`` note holds the oldest
Linux kernel its build supports (the loader refuses an older one: "FATAL: kernel too
old"); and glibc's banner says its version. Every file comes from an image, so every
offset and size is checked: a malformed file is a ``ValueError``, never a crash.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

_PT_INTERP = 3
_PT_NOTE = 4
_NT_GNU_ABI_TAG = 1
_LINUX = 0  # the ABI tag's first word: the OS
_MAX_HEADERS = 256  # program headers read at most (a real file has about a dozen)
_GLIBC_BANNER = re.compile(rb"GNU C Library[^\n]{0,80}? release version (\d+)\.(\d+)")


@dataclass(frozen=True)
class ElfFile:
    """The facts of one ELF file."""

    elf_class: int  # 1: 32-bit, 2: 64-bit
    data: int  # 1: little-endian, 2: big-endian
    machine: int  # e_machine
    interpreter: str  # PT_INTERP's path, '' for a static file or a library
    min_kernel: tuple[int, int, int] | None  # from NT_GNU_ABI_TAG (Linux), when present
    glibc: tuple[int, int] | None  # the version in glibc's banner, when this is glibc


def parse_elf(content: bytes) -> ElfFile:
    """The facts of an ELF file's bytes; ValueError when they are not a sound ELF file."""
    if len(content) < 52 or content[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    elf_class, data = content[4], content[5]
    if elf_class not in (1, 2) or data not in (1, 2):
        raise ValueError("an ELF file of unknown class or byte order")
    order = "<" if data == 1 else ">"
    machine = _unpack(order + "H", content, 18)[0]
    if elf_class == 2:
        phoff, phentsize, phnum = (
            _field(content, order + "Q", 32),
            56,
            _field(content, order + "H", 56),
        )
    else:
        phoff, phentsize, phnum = (
            _field(content, order + "I", 28),
            32,
            _field(content, order + "H", 44),
        )
    interpreter, min_kernel = "", None
    for index in range(min(phnum, _MAX_HEADERS)):
        kind, offset, size, align = _program_header(
            content, order, elf_class, phoff + index * phentsize
        )
        segment = _slice(content, offset, size)
        if kind == _PT_INTERP:
            interpreter = segment.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind == _PT_NOTE and min_kernel is None:
            min_kernel = _abi_tag(segment, order, 8 if align == 8 else 4)
    banner = _GLIBC_BANNER.search(content)
    glibc = (int(banner.group(1)), int(banner.group(2))) if banner else None
    return ElfFile(elf_class, data, machine, interpreter, min_kernel, glibc)


def _program_header(
    content: bytes, order: str, elf_class: int, at: int
) -> tuple[int, int, int, int]:
    """(p_type, p_offset, p_filesz, p_align) of the program header at ``at``."""
    if elf_class == 2:
        kind, _flags, offset, _vaddr, _paddr, size, _memsz, align = _unpack(
            order + "IIQQQQQQ", content, at
        )
    else:
        kind, offset, _vaddr, _paddr, size, _memsz, _flags, align = _unpack(
            order + "IIIIIIII", content, at
        )
    return kind, offset, size, align


def _abi_tag(notes: bytes, order: str, align: int) -> tuple[int, int, int] | None:
    """The Linux version in a GNU ABI tag note among ``notes``, else None."""
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = _unpack(order + "III", notes, at)
        name_at = at + 12
        desc_at = name_at + _aligned(namesz, align)
        name = notes[name_at : name_at + namesz].rstrip(b"\0")
        desc = notes[desc_at : desc_at + descsz]
        if kind == _NT_GNU_ABI_TAG and name == b"GNU" and len(desc) >= 16:
            os_, major, minor, patch = _unpack(order + "IIII", desc, 0)
            return (major, minor, patch) if os_ == _LINUX else None
        at = desc_at + _aligned(descsz, align)
    return None


def _aligned(size: int, align: int) -> int:
    return (size + align - 1) // align * align


def _field(content: bytes, fmt: str, at: int) -> int:
    return int(_unpack(fmt, content, at)[0])


def _unpack(fmt: str, content: bytes, at: int) -> tuple[int, ...]:
    if at < 0 or at + struct.calcsize(fmt) > len(content):
        raise ValueError("an ELF header points past the end of the file")
    return struct.unpack_from(fmt, content, at)


def _slice(content: bytes, offset: int, size: int) -> bytes:
    if offset < 0 or size < 0 or offset + size > len(content):
        raise ValueError("an ELF segment points past the end of the file")
    return content[offset : offset + size]
