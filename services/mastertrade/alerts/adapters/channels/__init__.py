"""Delivery channels, one module each, all of the `Channel` shape (see base.py)."""
