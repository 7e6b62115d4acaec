"""Typed stubs of the compiled packed-account codec (native/src/lib.rs).

`service/engine/packing.py` holds the pure-Python reference and selects the
implementation; the tests hold the two to the same bytes and the same accounts."""

from collections.abc import Callable

from service.engine.account import Account, Post
from service.engine.sketches import ActorSketch

class Codec:
    def __init__(
        self,
        account: type[Account],
        post: type[Post],
        sketch: type[ActorSketch],
        shared_topics: Callable[[tuple[str, ...]], tuple[str, ...]],
        /,
    ) -> None: ...
    def pack(self, account: Account, /) -> bytes: ...
    def unpack(self, account_id: str, packed: bytes, /) -> Account: ...
