"""Names shared by the light (start-up) and heavy parts of the app; importing this costs nothing."""

SERVICES: tuple[str, ...] = ("local", "openai", "azure")

# The content safety screens (kernel_app.providers.content_safety), "off" last.
CONTENT_SAFETY_SCREENS: tuple[str, ...] = ("offline", "openai", "azure", "off")
