"""all-MiniLM-L6-v2 (int8 ONNX) as a semantic-kernel embedding generator.

The model itself lives in :mod:`kernel_app.providers.embedder.minilm` (no semantic-kernel import, so the memory
CLI stays quick); this is its semantic-kernel face for the kernel's services.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from semantic_kernel.connectors.ai.embedding_generator_base import EmbeddingGeneratorBase

from kernel_app.providers.embedder.minilm import DIMENSIONS, default_threads, embed_texts, load_encoder, resolve_paths

if TYPE_CHECKING:
    import numpy as np
    from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings

__all__ = ["MiniLMEmbedder", "load_encoder"]


class MiniLMEmbedder(EmbeddingGeneratorBase):
    """Sentence embeddings by all-MiniLM-L6-v2 int8 on onnxruntime: (n, 384) float32, unit norm."""

    dimensions: ClassVar[int] = DIMENSIONS
    model_path: str
    tokenizer_path: str
    threads: int

    def __init__(
        self,
        service_id: str | None = None,
        ai_model_id: str = "all-MiniLM-L6-v2-int8",
        model_path: str | None = None,
        tokenizer_path: str | None = None,
        threads: int | None = None,
    ) -> None:
        model, tokenizer = resolve_paths(model_path, tokenizer_path)
        # A typing gap of pydantic: a checker types super().__init__ with the base model's fields only, where
        # pydantic's __init__ (the one super() reaches) takes this class's fields too.
        super().__init__(
            ai_model_id=ai_model_id,
            service_id=service_id or "",  # empty → ai_model_id (AIServiceClientBase.model_post_init)
            model_path=str(model),  # pyright: ignore[reportCallIssue]
            tokenizer_path=str(tokenizer),  # pyright: ignore[reportCallIssue]
            threads=threads or default_threads(),  # pyright: ignore[reportCallIssue]
        )

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embed ``texts`` (blocking): one row per text, in order."""
        return embed_texts(texts, self.model_path, self.tokenizer_path, self.threads, batch_size)

    async def generate_embeddings(
        self,
        texts: list[str],
        settings: PromptExecutionSettings | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """semantic-kernel's interface; ``batch_size`` may be passed as a keyword."""
        # onnxruntime blocks: run it in a worker thread so the event loop stays free.
        return await asyncio.to_thread(self.embed, list(texts), kwargs.get("batch_size", 32))
