"""Versioned SQL migrations of MasterTrade's database, applied by `mastertrade migrate`."""
