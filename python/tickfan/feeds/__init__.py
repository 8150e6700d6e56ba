"""Tick sources that feed the hub through the same ingest path as ``POST /api/ticks``."""
