"""Names shared by the light (start-up) and heavy parts of the app; importing this costs nothing."""

SERVICES: tuple[str, ...] = ("local", "openai", "azure")
