"""Load an expensive object (a model, a session) once per process and key, safely from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class LoadOnce(Generic[Key, Value]):
    """A per-process cache whose ``get`` runs ``load`` at most once per key, even under concurrent calls.

    The fast path takes no lock; a miss takes it and checks again, so two threads asking for the same
    model at once load it once (a second load would cost seconds and the memory of another copy).
    """

    def __init__(self) -> None:
        self._loaded: dict[Key, Value] = {}
        self._lock = threading.Lock()

    def get(self, key: Key, load: Callable[[], Value]) -> Value:
        value = self._loaded.get(key)
        if value is not None:
            return value
        with self._lock:
            value = self._loaded.get(key)
            if value is None:
                value = load()
                self._loaded[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._loaded

    def __len__(self) -> int:
        return len(self._loaded)
