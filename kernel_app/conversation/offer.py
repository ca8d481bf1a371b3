"""Which functions a turn offers a small model: the ones closest in meaning to the user's message.

The planner's TF-IDF (:func:`planners.relevance.tfidf_scores`) matches words, which fails on a chat
message: "What is 1234 times 5678?" shares no word with Math.multiply but stems "times" to Time's
"time", so the embedded model was offered twelve Time functions and no Math. The bundled sentence
embedder (all-MiniLM-L6-v2, offline, ~10 ms a message on one core) ranks Math.multiply first for it, and
Time.dayOfWeek for "What day is it?". Function texts are embedded once per engine; when the embedder
cannot load, the TF-IDF ranking is used.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


class SemanticRelevance:
    """A :data:`planners.relevance.Relevance` hook: cosine similarity of message and function embeddings."""

    def __init__(self, embedder: Any = None) -> None:
        self._embedder = embedder
        self._vectors: dict[str, Any] = {}  # function text -> its unit vector
        self._failed = False
        self._lock = threading.Lock()  # one load of the embedder, one cache writer

    def _embedder_or_default(self) -> Any:
        if self._embedder is None:
            from memories.embedders import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def scores(self, message: str, functions: Sequence[Any]) -> list[float]:
        """One score per function (in a worker thread: the embedder is CPU work)."""
        from memories.embedders import normalize_rows
        from planners.relevance import function_text

        texts = [function_text(f) for f in functions]
        with self._lock:
            embedder = self._embedder_or_default()
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
            if missing:
                vectors = normalize_rows(embedder.embed(missing))
                self._vectors.update(zip(missing, vectors, strict=True))
            query = normalize_rows(embedder.embed([message]))[0]
        return [float(self._vectors[t] @ query) for t in texts]

    async def __call__(self, message: str, functions: Sequence[Any]) -> list[float]:
        from planners.relevance import tfidf_scores

        if not self._failed:
            try:
                return await asyncio.to_thread(self.scores, message, functions)
            except Exception as error:  # no ONNX runtime or model files: words still rank them
                self._failed = True
                log.warning("function relevance falls back to word matching: %s", error)
        return tfidf_scores(message, functions)
