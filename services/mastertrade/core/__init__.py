"""What every MasterTrade service shares: settings, logging, metrics, health, connections."""
