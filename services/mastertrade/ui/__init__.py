"""monitoring_ui (seed port 3000): the web dashboard; health at /api/health as in the seed."""
