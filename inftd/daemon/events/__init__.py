"""Agent events leaving the database: to WebSocket clients through the ``hub``, and to
owners' webhooks through ``push``."""
