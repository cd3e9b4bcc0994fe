"""Web server: API routes (api.py) and the live page (static/)."""
