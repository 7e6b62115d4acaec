"""What the C allocator holds: what the compiled cores allocate (Rust's allocations use
it; Python's small objects live in its own arenas, outside this count)."""

from __future__ import annotations

import ctypes
import ctypes.util


def malloc_in_use() -> int:
    """Bytes in use by glibc's malloc (raises AttributeError or OSError without glibc's
    mallinfo2)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)
