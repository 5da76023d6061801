"""Settings of data_access_api: the bounds of its Redis page cache."""

from __future__ import annotations

from pydantic import Field

from mastertrade.core.settings import ServiceSettings
from mastertrade.data_api.cache import CacheLimits


class DataApiSettings(ServiceSettings):
    """DATA_API_CACHE_*: how long and how much the page cache keeps."""

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

    def cache_limits(self) -> CacheLimits:
        return CacheLimits(
            ttl=self.data_api_cache_ttl,
            max_entries=self.data_api_cache_max_entries,
            max_bytes=self.data_api_cache_max_bytes,
            max_entry_bytes=self.data_api_cache_max_entry_bytes,
        )
