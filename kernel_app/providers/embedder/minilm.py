"""all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, with no semantic-kernel import.

The embedded, offline default embedder: 384-dimensional, L2-normalised sentence vectors, the same
pipeline as sentence-transformers' all-MiniLM-L6-v2 (WordPiece, max 256 tokens, mean pooling over
the attention mask, L2 normalisation) with no PyTorch. Where its two files come from and how they are
checked: :mod:`kernel_app.providers.embedder.files`. The session is loaded once per process, on first use.

The memory CLI embeds through this module directly: importing semantic-kernel costs ~2 s, more than
the embedding itself. :mod:`kernel_app.providers.embedder.generator` is its semantic-kernel face.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import ConfigError, DependencyMissingError
from kernel_app.providers.embedder.files import (
    INSTALL_HINT,
    MODEL,
    TOKENIZER,
    default_model_path,
    default_tokenizer_path,
    verify,
)
from kernel_app.providers.load_once import LoadOnce

if TYPE_CHECKING:
    import numpy as np

MAX_TOKENS = 256  # what all-MiniLM-L6-v2 was trained with
DIMENSIONS = 384


def default_threads() -> int:
    """All CPUs but one (at most 4): a 22M-parameter model gains little from more, and onnxruntime's
    threads spin-wait, so sharing every core with the chat model or another process slows both.
    On 2 cores, 1 thread measured as fast as 2 (batches of 32) and faster one text at a time."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus - 1, 4))


@dataclass
class _Encoder:
    """An onnxruntime session and its tokenizer; ``run`` is thread-safe (onnxruntime's is)."""

    session: Any
    tokenizer: Any
    input_names: frozenset[str]

    def run(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        # Feed what the graph declares: some exports drop token_type_ids.
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {name: value for name, value in feeds.items() if name in self.input_names}
        hidden = self.session.run(None, feeds)[0]  # (batch, tokens, 384)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


_ENCODERS: LoadOnce[tuple[str, str, int], _Encoder] = LoadOnce()


def load_encoder(model_path: str, tokenizer_path: str, threads: int) -> _Encoder:
    """The shared encoder for these parameters, loaded on first use (thread-safe)."""
    return _ENCODERS.get((model_path, tokenizer_path, threads), lambda: _load(model_path, tokenizer_path, threads))


def _load(model_path: str, tokenizer_path: str, threads: int) -> _Encoder:
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer
    except ImportError as error:
        raise DependencyMissingError(INSTALL_HINT) from error
    tokenizer = Tokenizer.from_file(tokenizer_path)
    # The shipped tokenizer.json pads every text to 128 and truncates at 128: pad per batch to
    # the longest text instead, and truncate at the model's 256.
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    names = frozenset(i.name for i in session.get_inputs())
    return _Encoder(session=session, tokenizer=tokenizer, input_names=names)


def resolve_paths(model_path: str | None, tokenizer_path: str | None) -> tuple[Path, Path]:
    """The model and tokenizer files to use, checked: a one-line error names what is missing or damaged.

    The default files are verified by sha256; files the caller names are theirs, so only must exist."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tokenizers") is None:
        raise DependencyMissingError(INSTALL_HINT)
    model = Path(model_path) if model_path else default_model_path()
    tokenizer = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
    for given, path, known in ((model_path, model, MODEL), (tokenizer_path, tokenizer, TOKENIZER)):
        if not given:
            verify(path, known)
        elif not path.is_file():
            raise ConfigError(f"{path} is missing: give an existing {known.name}, or leave it out for the default")
    return model, tokenizer


def embed_texts(
    texts: list[str], model_path: str, tokenizer_path: str, threads: int, batch_size: int = 32
) -> np.ndarray:
    """Embed ``texts`` (blocking): one unit-norm float32 row per text, in order."""
    import numpy as np

    if isinstance(texts, str):
        raise TypeError("embed() takes a list of texts, not one string")
    result = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    if not texts:
        return result
    encoder = load_encoder(model_path, tokenizer_path, threads)
    # Batches of similar length pad less; padding does not change a text's vector (masked).
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), max(1, batch_size)):
        rows = order[start : start + max(1, batch_size)]
        result[rows] = encoder.run([texts[i] for i in rows])
    return result


class MiniLM:
    """The embedder as a plain object (``embed``), for the memory store: no semantic-kernel."""

    dimensions = DIMENSIONS

    def __init__(
        self, model_path: str | None = None, tokenizer_path: str | None = None, threads: int | None = None
    ) -> None:
        model, tokenizer = resolve_paths(model_path, tokenizer_path)
        self.model_path, self.tokenizer_path = str(model), str(tokenizer)
        self.threads = threads or default_threads()

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return embed_texts(texts, self.model_path, self.tokenizer_path, self.threads, batch_size)
