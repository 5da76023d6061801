"""Tests of the MasterTrade services: platform, services, CLI, migrations, images."""
