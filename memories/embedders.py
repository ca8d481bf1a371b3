"""Embedders: what turns texts into L2-normalised float32 vectors for the store.

``Embedder`` is the whole contract (a name, a dimension, ``embed``). The collection remembers the
name and dimension it was built with, so a store never mixes vectors from two models.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDER_NAME = "all-MiniLM-L6-v2-int8"
DEFAULT_EMBEDDER_DIMENSIONS = 384


@runtime_checkable
class Embedder(Protocol):
    """``embed`` returns one float32 row per text, L2-normalised (the store normalises again anyway)."""

    name: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def normalize_rows(vectors: Any) -> np.ndarray:
    """float32 copy with unit-length rows; all-zero rows stay zero (they then match nothing)."""
    import numpy as np

    array = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    np.divide(array, norms, out=array, where=norms > 0)
    return array


_WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    # A keyed-free, process-independent hash (Python's hash() is salted per process).
    digest = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return digest % dimensions, (1.0 if (digest >> 63) & 1 else -1.0)


class HashingEmbedder:
    """Deterministic feature hashing of lowercase word unigrams and bigrams (signed), normalised.

    No model, no randomness: texts that share words are close, others are near-orthogonal. Cheap
    enough for tests and for benchmarks of the store itself; not a semantic model.
    """

    def __init__(self, dimensions: int = 64) -> None:
        if dimensions < 2:
            raise ValueError("dimensions must be at least 2")
        self.dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts, not one string")
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for feature in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                column, sign = _bucket(feature, self.dimensions)
                out[row, column] += sign
        return normalize_rows(out)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dimensions={self.dimensions})"


class MiniLMAdapter:
    """The embedded all-MiniLM-L6-v2 (int8, onnxruntime) as an :class:`Embedder`.

    The model is loaded on the first ``embed`` only: opening a store, listing or checking a
    collection's embedder never pays for it (nor for importing semantic-kernel).
    """

    name = DEFAULT_EMBEDDER_NAME
    dimensions = DEFAULT_EMBEDDER_DIMENSIONS

    def __init__(self, **options: Any) -> None:
        self._options = options  # passed to MiniLM (model_path, tokenizer_path, threads)
        self._model: Any = None

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            from kernel_app.providers.embedder.minilm import MiniLM

            self._model = MiniLM(**self._options)
        return self._model.embed(list(texts))

    def __repr__(self) -> str:
        return "MiniLMAdapter()"


@functools.lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The offline default: all-MiniLM-L6-v2 int8, 384 dimensions (shared per process)."""
    return MiniLMAdapter()
