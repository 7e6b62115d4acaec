"""What the compiled cores hold allocated: the extension counts its own allocations
(native/src/lib.rs, `allocated_bytes`; they go to mimalloc, outside glibc's counts).
Python's objects are not in it."""

from __future__ import annotations

import engagement_native


def malloc_in_use() -> int:
    """Bytes the extension's Rust code holds now."""
    return int(engagement_native.allocated_bytes())
