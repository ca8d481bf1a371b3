"""LoadOnce: the per-process model cache shared by the embedded chat model and the embedder."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kernel_app.providers.load_once import LoadOnce


def test_concurrent_first_calls_load_once_per_key() -> None:
    cache: LoadOnce[str, object] = LoadOnce()
    loads: list[str] = []
    lock = threading.Lock()

    def loader(key: str):
        def load() -> object:
            with lock:
                loads.append(key)
            time.sleep(0.05)  # long enough for every thread to arrive while the first one loads
            return object()

        return load

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: cache.get("a" if i % 2 else "b", loader("a" if i % 2 else "b")), range(16)))
    assert sorted(loads) == ["a", "b"]
    assert len({id(r) for r in results}) == 2 and len(cache) == 2 and "a" in cache


def test_a_failed_load_is_not_cached() -> None:
    cache: LoadOnce[str, str] = LoadOnce()

    def broken() -> str:
        raise ImportError("no model package")

    with pytest.raises(ImportError):
        cache.get("model", broken)
    assert "model" not in cache
    assert cache.get("model", lambda: "loaded") == "loaded"
