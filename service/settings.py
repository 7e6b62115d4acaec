"""The one Settings object: read from ENGAGEMENT_* environment variables at start-up."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Without ENGAGEMENT_MEMORY_BUDGET_BYTES the accounts may take this share of the
# container's memory limit: the rest is the interpreter, the dedupe memory (~8.5 bytes
# per remembered event id), the score cache, discovery's index, and the pages the forked
# snapshot writer copies while it runs.
MEMORY_BUDGET_SHARE_OF_LIMIT = 0.4
# Without a budget or a known limit (a process outside a container).
DEFAULT_MEMORY_BUDGET_BYTES = 512 * 2**20

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENGAGEMENT_", frozen=True)

    kafka_bootstrap_servers: str = "localhost:9092"
    events_topic: str = "engagement-events"
    dlq_topic: str = "engagement-events.dlq"
    consumer_group: str = "engagement-scorer"
    changelog_topic: str = ""  # empty: "<consumer_group>-accounts-changelog"
    actors_topic: str = ""  # empty: "<consumer_group>-actors-repartition"
    signals_topic: str = ""  # empty: "<consumer_group>-audience-signals"
    scores_topic: str = "engagement-scores"
    score_change_step: float = Field(default=5.0, gt=0)
    score_change_interval_s: float = Field(default=60.0, ge=0)
    # At most this share of the consumer's time re-scores accounts for the stream.
    score_change_share: float = Field(default=0.1, gt=0, le=1)
    internal_topic_replication_factor: int = Field(default=0, ge=0)  # 0: min(3, brokers)
    topic_wait_s: float = Field(default=60.0, ge=0)
    commit_interval_s: float = Field(default=1.0, gt=0)
    connect_retry_initial_s: float = Field(default=0.5, gt=0)
    connect_retry_max_s: float = Field(default=15.0, gt=0)
    consumer_unhealthy_after_s: float = Field(default=120.0, gt=0)
    advertised_url: str = ""  # empty: http://<hostname>:<http_port>
    group_instance_id: str = ""  # static membership (KIP-345); empty: dynamic
    # Warm copies of each partition on other instances (Kafka Streams' standby replicas).
    standby_replicas: int = Field(default=0, ge=0)
    # How long the group waits for a silent member before moving its partitions away.
    session_timeout_s: float = Field(default=10.0, ge=1)
    forward_timeout_s: float = Field(default=2.0, gt=0)
    # A partition taken over answers 503 until it has consumed its input up to where it
    # ended at the takeover, for at most this long (0: it answers at once).
    takeover_catch_up_s: float = Field(default=10.0, ge=0)
    fetch_max_records: int = Field(default=2000, ge=1)
    fetch_timeout_ms: int = Field(default=200, ge=1)

    snapshot_dir: Path = Path(".snapshots")
    snapshot_interval_s: float = Field(default=60.0, gt=0)
    snapshots_kept: int = Field(default=3, ge=1)
    snapshot_fork: bool = True
    shutdown_timeout_s: float = Field(default=20.0, gt=0)

    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=1, le=65535)
    api_token: str = ""
    protect_reads: bool = False
    max_request_body_bytes: int = Field(default=4096, ge=0)

    window_days: float = Field(default=30.0, gt=0)
    allowed_lateness_s: float = Field(default=6 * 3600.0, ge=0)
    max_future_skew_s: float = Field(default=300.0, ge=0)
    burst_window_s: float = Field(default=30.0, gt=0)
    tier_scheme: Literal["article", "industry"] = "article"
    max_accounts: int = Field(default=1_000_000, ge=1)
    max_posts_per_account: int = Field(default=256, ge=1)
    # Bytes the accounts of this instance may take, hot and packed; sizes the hot set
    # (see `account_memory_budget`). 0: a share of memory_limit_bytes.
    memory_budget_bytes: int = Field(default=0, ge=0)
    memory_limit_bytes: int = Field(default=0, ge=0)  # the container's; 0: not known
    # Accounts held as objects, per partition: set, it overrides the memory budget.
    hot_accounts: int | None = Field(default=None, ge=1)
    max_event_ids: int = Field(default=50_000_000, ge=1_000)
    max_event_bytes: int = Field(default=8192, ge=256)
    # Interactions folded in compiled code where it is built (native/src/fold.rs); off,
    # the engine's Python reference folds every event.
    native_fold: bool = True
    # A score's numbers computed in compiled code where it is built (the same results);
    # off, the Python reference computes them.
    native_scoring: bool = True
    expiry_interval_s: float = Field(default=60.0, gt=0)

    dlq_send_timeout_s: float = Field(default=5.0, gt=0)
    dlq_retry_initial_s: float = Field(default=0.2, gt=0)
    dlq_retry_max_s: float = Field(default=10.0, gt=0)

    log_format: Literal["auto", "json", "plain"] = "auto"
    log_level: str = "INFO"

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap_parses(cls, value: str) -> str:
        """A bad address must stop the start-up with a clear error, not retry for ever."""
        servers = [part.strip() for part in value.split(",")]
        for server in servers:
            match = _HOST_PORT.match(server)
            if match is None or not 0 < int(match.group(2)) < 65536:
                raise ValueError(
                    f"{server!r} is not host:port (ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS={value!r})")
        return ",".join(servers)

    @property
    def account_memory_budget(self) -> int:
        """The accounts' budget: as set, else a share of the container's memory limit,
        else a fixed default."""
        if self.memory_budget_bytes:
            return self.memory_budget_bytes
        if self.memory_limit_bytes:
            return int(self.memory_limit_bytes * MEMORY_BUDGET_SHARE_OF_LIMIT)
        return DEFAULT_MEMORY_BUDGET_BYTES

    @property
    def changelog(self) -> str:
        return self.changelog_topic or f"{self.consumer_group}-accounts-changelog"

    @property
    def actors(self) -> str:
        return self.actors_topic or f"{self.consumer_group}-actors-repartition"

    @property
    def signals(self) -> str:
        return self.signals_topic or f"{self.consumer_group}-audience-signals"

    @property
    def own_url(self) -> str:
        """How other instances reach this one (the pod's stable DNS name in Kubernetes)."""
        return (self.advertised_url or f"http://{socket.gethostname()}:{self.http_port}"
                ).rstrip("/")
