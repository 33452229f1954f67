"""HTTP: the ASGI app, the webhook hot path, the admin API and the dashboard."""
