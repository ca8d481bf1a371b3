"""Memory: a persistent, crash-safe FAISS similarity store with collections and metadata.

Reserved public names (filled by the memory work): ``MemoryStore``, ``MemoryRecord``, ``SearchResult``.
"""

__all__: list[str] = []
