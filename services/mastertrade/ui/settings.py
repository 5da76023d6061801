"""Settings of monitoring_ui: it reads through API_GATEWAY_URL and DATA_ACCESS_API_URL, as in
the seed; the catalog's `serviceUrls` of the monitoring-ui workload names them, and their URLs
arrive in the settings' `upstreams`, read by `load_settings`."""

from __future__ import annotations

from mastertrade.core.settings import ServiceSettings


class UiSettings(ServiceSettings):
    """Where the dashboard reads from: `upstreams` (service name -> URL)."""
