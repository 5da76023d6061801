"""MasterTrade: the crypto trading services, one package and one image for every workload."""

__version__ = "0.1.0"
