"""Which partition holds an account, and forwarding a request to the instance that owns it.

The partition is the producer's: Kafka's default partitioner (murmur2 of the key, the
account id in UTF-8), so an instance finds an account's partition without asking anyone.
Forwarded requests carry `FORWARDED_HEADER`; an instance that receives one for a
partition it does not own answers 503 instead of forwarding again, so a request crosses
at most one hop and a forwarding loop cannot form.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import httpx
from aiokafka.partitioner import murmur2

FORWARDED_HEADER = "x-engagement-forwarded-by"
SERVED_BY_HEADER = "x-engagement-served-by"
# Headers passed on to the caller from the owner's answer.
_PASSED_HEADERS = ("content-type", "retry-after", SERVED_BY_HEADER)


@functools.lru_cache(maxsize=65_536)
def partition_for(account_id: str, partitions: int) -> int:
    hashed: int = murmur2(account_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class Forwarded:
    status: int
    body: bytes
    headers: dict[str, str]


class ForwardingError(Exception):
    """The owner could not be reached or did not answer in time."""


class Forwarder:
    """A pooled HTTP client to the other instances."""

    def __init__(self, own_url: str, timeout_s: float) -> None:
        self.own_url = own_url
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def get(self, owner_url: str, path_and_query: str,
                  headers: dict[str, str] | None = None) -> Forwarded:
        return await self._send("GET", owner_url, path_and_query, None, headers)

    async def post(self, owner_url: str, path: str, body: bytes,
                   headers: dict[str, str] | None = None) -> Forwarded:
        return await self._send("POST", owner_url, path, body, headers)

    async def _send(self, method: str, owner_url: str, target: str, body: bytes | None,
                    headers: dict[str, str] | None) -> Forwarded:
        sent = {FORWARDED_HEADER: self.own_url, **(headers or {})}
        if body is not None:
            sent.setdefault("content-type", "application/json")
        try:
            response = await self._client.request(method, owner_url + target,
                                                   content=body, headers=sent)
        except httpx.HTTPError as error:
            raise ForwardingError(f"{owner_url}: {type(error).__name__}: {error}") from error
        passed = {name: value for name in _PASSED_HEADERS
                  if (value := response.headers.get(name)) is not None}
        passed.setdefault(SERVED_BY_HEADER, owner_url)
        return Forwarded(response.status_code, response.content, passed)

    async def close(self) -> None:
        await self._client.aclose()
