"""Draw the launcher logos: a rounded tile in the distro's colour with its initials.

Run ``python kernelspecs/make_logos.py`` after adding a distro below; the PNGs are
committed. Drawn here from scratch (no trademarked artwork), with only the standard
library: a 5x7 pixel font and a PNG writer.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

# distro id (or family) -> (initials, background RGB)
LOGOS = {
    "debian": ("Db", (168, 0, 48)),
    "ubuntu": ("Ub", (233, 84, 32)),
    "centos": ("Ce", (38, 46, 121)),
    "rhel": ("RH", (200, 0, 0)),
    "rocky": ("Ro", (16, 185, 129)),
    "almalinux": ("Al", (8, 92, 160)),
    "ol": ("OL", (199, 70, 52)),
    "fedora": ("Fe", (41, 65, 114)),
    "amzn": ("Am", (35, 47, 62)),
    "suse": ("Su", (115, 186, 37)),
    "alpine": ("Ap", (13, 89, 127)),
    "arch": ("Ar", (23, 147, 209)),
    "linux": ("Lx", (80, 80, 80)),
}

_FONT = {
    "A": ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
    "C": ["01110", "10001", "10000", "10000", "10000", "10001", "01110"],
    "D": ["11110", "10001", "10001", "10001", "10001", "10001", "11110"],
    "F": ["11111", "10000", "10000", "11110", "10000", "10000", "10000"],
    "H": ["10001", "10001", "10001", "11111", "10001", "10001", "10001"],
    "L": ["10000", "10000", "10000", "10000", "10000", "10000", "11111"],
    "O": ["01110", "10001", "10001", "10001", "10001", "10001", "01110"],
    "R": ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
    "S": ["01111", "10000", "10000", "01110", "00001", "00001", "11110"],
    "U": ["10001", "10001", "10001", "10001", "10001", "10001", "01110"],
    "b": ["10000", "10000", "10110", "11001", "10001", "10001", "11110"],
    "e": ["00000", "00000", "01110", "10001", "11111", "10000", "01110"],
    "l": ["01100", "00100", "00100", "00100", "00100", "00100", "01110"],
    "m": ["00000", "00000", "11010", "10101", "10101", "10001", "10001"],
    "o": ["00000", "00000", "01110", "10001", "10001", "10001", "01110"],
    "p": ["00000", "00000", "11110", "10001", "11110", "10000", "10000"],
    "r": ["00000", "00000", "10110", "11001", "10000", "10000", "10000"],
    "u": ["00000", "00000", "10001", "10001", "10001", "10011", "01101"],
    "x": ["00000", "00000", "10001", "01010", "00100", "01010", "10001"],
}


def draw(initials: str, colour: tuple[int, int, int], size: int) -> list[list[tuple]]:
    """RGBA pixels: a rounded tile with white initials centred on it."""
    radius = size // 5
    pixels = [[(0, 0, 0, 0)] * size for _ in range(size)]
    for y in range(size):
        for x in range(size):
            dx = max(radius - x, 0, x - (size - 1 - radius))
            dy = max(radius - y, 0, y - (size - 1 - radius))
            if dx * dx + dy * dy <= radius * radius:
                pixels[y][x] = (*colour, 255)
    scale = max(1, size // 16)
    width = len(initials) * 6 * scale - scale
    left, top = (size - width) // 2, (size - 7 * scale) // 2
    for index, char in enumerate(initials):
        for row, bits in enumerate(_FONT[char]):
            for col, bit in enumerate(bits):
                if bit == "1":
                    for sy in range(scale):
                        for sx in range(scale):
                            x = left + (index * 6 + col) * scale + sx
                            y = top + row * scale + sy
                            pixels[y][x] = (255, 255, 255, 255)
    return pixels


def png(pixels: list[list[tuple]]) -> bytes:
    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(value for pixel in row for value in pixel) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    folder = Path(__file__).parent / "logos"
    folder.mkdir(exist_ok=True)
    for name, (initials, colour) in LOGOS.items():
        for size in (32, 64):
            (folder / f"{name}-{size}x{size}.png").write_bytes(png(draw(initials, colour, size)))


if __name__ == "__main__":
    main()
