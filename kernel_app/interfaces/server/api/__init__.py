"""Our REST API under ``/v1``: one router per concern (functions, conversations, plans, memory, health)."""
