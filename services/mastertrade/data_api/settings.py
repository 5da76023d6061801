"""Settings of data_access_api: the bounds of its Redis page cache and of its CSV exports."""

from __future__ import annotations

from pydantic import Field

from mastertrade.core.connections import POOL_SIZE
from mastertrade.core.settings import ServiceSettings
from mastertrade.data_api.cache import CacheLimits
from mastertrade.data_api.export import ExportLimits

MAX_EXPORTS = POOL_SIZE - 2  # the JSON pages keep connections of their own


class DataApiSettings(ServiceSettings):
    """DATA_API_CACHE_*: how long and how much the page cache keeps; DATA_API_*EXPORT*: how
    many CSV exports stream at once, and for how long at most."""

    data_api_cache_ttl: int = Field(
        default=5, ge=0, le=3600, description="seconds a cached page lives; 0 turns caching off"
    )
    data_api_cache_max_entries: int = Field(
        default=1000, ge=0, le=1_000_000, description="the most pages cached at once"
    )
    data_api_cache_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        le=16 * 1024**3,
        description="the most bytes the cached pages take in Redis, e.g. 67108864 (64 MiB)",
    )
    data_api_cache_max_entry_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=0,
        le=512 * 1024 * 1024,
        description="pages larger than this many bytes are not cached",
    )

    data_api_max_exports: int = Field(
        default=4, ge=1, le=MAX_EXPORTS,
        description=f"CSV exports streaming at once per pod, at most {MAX_EXPORTS}: each holds "
        f"one of its {POOL_SIZE} database connections, and the JSON pages need the others; more "
        "are answered 503 with Retry-After",
    )  # fmt: skip
    data_api_export_seconds: float = Field(
        default=600, ge=1, le=86400, allow_inf_nan=False,
        description="the longest a CSV export may stream: a client still reading then is cut "
        "off (its answer ends incomplete) and the connection given back",
    )  # fmt: skip

    def export_limits(self) -> ExportLimits:
        return ExportLimits(most=self.data_api_max_exports, seconds=self.data_api_export_seconds,
                            wait=self.dependency_timeout)  # fmt: skip

    def cache_limits(self) -> CacheLimits:
        return CacheLimits(
            ttl=self.data_api_cache_ttl,
            max_entries=self.data_api_cache_max_entries,
            max_bytes=self.data_api_cache_max_bytes,
            max_entry_bytes=self.data_api_cache_max_entry_bytes,
        )
