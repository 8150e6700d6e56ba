"""Litestar only: the app factory (``app``), the WebSocket adapter (``socket``), the
market-data channel (``market_data``) and the HTTP routes (``api``)."""
