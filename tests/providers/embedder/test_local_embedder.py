"""The embedded embedder (all-MiniLM-L6-v2 int8 on onnxruntime), for real.

Its packages are base dependencies of Kernel App, so a missing one fails here (with the pip hint)
rather than skipping.
"""

from __future__ import annotations

import numpy as np
import pytest
from semantic_kernel import Kernel
from semantic_kernel.connectors.ai.embedding_generator_base import EmbeddingGeneratorBase

from kernel_app.providers.embedder.generator import MiniLMEmbedder, load_encoder

pytestmark = pytest.mark.e2e  # the real embedded embedder (MiniLM on onnxruntime)

PARAPHRASE = ("How can the shop make more money?", "What are ways to increase the store's revenue?")
UNRELATED = "The cat sleeps on the warm windowsill."
TEXTS = [
    *PARAPHRASE,
    UNRELATED,
    "ok",
    "A much longer sentence that rambles on about supply chains, seasonal demand, staffing and the rent, "
    "so that the shorter texts in its batch are padded a lot.",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_vectors_are_384_dimensional_unit_float32(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) == (len(TEXTS), embedder.dimensions)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(embedder: MiniLMEmbedder) -> None:
    question, paraphrase, unrelated = embedder.embed([*PARAPHRASE, UNRELATED])
    assert float(question @ paraphrase) > float(question @ unrelated) + 0.3


def test_batches_give_the_same_vectors_as_single_texts(embedder: MiniLMEmbedder) -> None:
    singles = np.stack([embedder.embed([text])[0] for text in TEXTS])
    np.testing.assert_allclose(embedder.embed(TEXTS), singles, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(TEXTS, batch_size=2), singles, atol=1e-5)


async def test_through_semantic_kernels_interface(embedder: MiniLMEmbedder) -> None:
    kernel = Kernel()
    kernel.add_service(embedder)
    service = kernel.get_service(embedder.service_id, type=EmbeddingGeneratorBase)
    assert service.ai_model_id == "all-MiniLM-L6-v2-int8"
    vectors = await service.generate_embeddings(list(PARAPHRASE))
    assert isinstance(vectors, np.ndarray) and vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors, embedder.embed(list(PARAPHRASE)), atol=1e-6)
    raw = await service.generate_raw_embeddings([UNRELATED])  # semantic-kernel's fallback to the above
    assert raw.shape == (1, 384)


def test_the_session_loads_once_per_process(embedder: MiniLMEmbedder) -> None:
    other = MiniLMEmbedder(service_id="other")
    first = load_encoder(embedder.model_path, embedder.tokenizer_path, embedder.threads)
    assert load_encoder(other.model_path, other.tokenizer_path, other.threads) is first
