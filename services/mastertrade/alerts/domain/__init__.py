"""Pure alert logic: events to alerts, Alertmanager's webhook, texts, backoff, rate limits."""
