"""Command-line interface (an interface layer: it only calls the core)."""
