"""Clear the "open for write" flags a killed HDF5 writer leaves in the superblock.

A SWMR writer killed with SIGKILL leaves file-consistency flags set in the
version 2/3 superblock; HDF5 then refuses to reopen the file for writing until
they are cleared (what ``h5clear -s`` does).  The superblock carries a Jenkins
lookup3 checksum, so clearing the flags means rewriting it too.  Only call this
when no writer is alive (the caller holds the run's writer lock).
"""

import os
from pathlib import Path

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    for k1, k2, k3 in ((4, 6, 8), (16, 19, 4)):
        a = ((a - c) & _MASK) ^ _rot(c, k1)
        c = (c + b) & _MASK
        b = ((b - a) & _MASK) ^ _rot(a, k2)
        a = (a + c) & _MASK
        c = ((c - b) & _MASK) ^ _rot(b, k3)
        b = (b + a) & _MASK
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c = ((c ^ b) - _rot(b, 14)) & _MASK
    a = ((a ^ c) - _rot(c, 11)) & _MASK
    b = ((b ^ a) - _rot(a, 25)) & _MASK
    c = ((c ^ b) - _rot(b, 16)) & _MASK
    a = ((a ^ c) - _rot(c, 4)) & _MASK
    b = ((b ^ a) - _rot(a, 14)) & _MASK
    return ((c ^ b) - _rot(b, 24)) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, as HDF5's ``H5_checksum_lookup3``."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    i = 0
    while length - i > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _MASK
        a, b, c = _mix(a, b, c)
        i += 12
    if i == length:
        return c
    tail = data[i:] + bytes(12 - (length - i))
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    return _final(a, b, c)


def clear_write_flags(path: str | os.PathLike) -> bool:
    """Clear the superblock's file-consistency flags; return True if any were set."""
    with Path(path).open("r+b") as fh:
        head = fh.read(12)
        if head[:8] != _SIGNATURE or head[8] not in (2, 3):
            raise ValueError(f"{path}: no version 2/3 HDF5 superblock at offset 0")
        size_of_offsets = head[9]
        fh.seek(0)
        block = bytearray(fh.read(12 + 4 * size_of_offsets + 4))
        body, stored = block[:-4], int.from_bytes(block[-4:], "little")
        if lookup3(bytes(body)) != stored:
            raise ValueError(f"{path}: superblock checksum does not match")
        if body[11] == 0:
            return False
        body[11] = 0
        fh.seek(0)
        fh.write(bytes(body) + lookup3(bytes(body)).to_bytes(4, "little"))
        fh.flush()
        os.fsync(fh.fileno())
    return True
