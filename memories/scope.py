"""Whose memory collections a caller sees: each user's own, unless a collection is declared shared.

A :class:`CollectionScope` maps the collection name a caller uses (``docs``) to the name it is stored
under, per principal (:mod:`kernel_app.base.identity`: ``entra:<tenant>:<oid>``, ``key:<hash>``,
``local``). The local user keeps the exact names it has always had, so a laptop's collections (and every
collection kept before scopes) are unchanged; any other principal's are stored as ``u-<12 hex>.<name>``,
where the hex comes from its principal, so one user's ``docs`` is not another's and no name one user
can give reaches another's. Shared collections (the ``shared_collections`` setting) are the same for all.

The store itself knows nothing of this: the interfaces map names at their boundary (the REST memory
API with :func:`CollectionScope.stored`), and set :data:`current` for the request, which the kernel's
``memory`` plugin reads, so model-called and MCP-called memory functions see the caller's collections too.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from memories.errors import CollectionNotFoundError, MemoryUsageError

LOCAL = "local"
PREFIX = "u-"  # then 12 hex digits of the principal's hash and a dot: 15 characters of the 64 a name may have
PREFIX_CHARS = len(PREFIX) + 12 + 1
MAX_VISIBLE_CHARS = 64 - PREFIX_CHARS


@dataclass(frozen=True)
class CollectionScope:
    """The collections ``principal`` sees; ``shared``: names every principal sees as they are."""

    principal: str = LOCAL
    shared: frozenset[str] = field(default_factory=frozenset)

    @staticmethod
    def of(principal: str, shared: Iterable[str] = ()) -> CollectionScope:
        return CollectionScope(principal, frozenset(shared))

    @property
    def is_local(self) -> bool:
        return self.principal == LOCAL

    @property
    def prefix(self) -> str:
        digest = hashlib.sha256(self.principal.encode()).hexdigest()[:12]
        return f"{PREFIX}{digest}."

    def stored(self, visible: str) -> str:
        """The name ``visible`` is stored under for this principal (checked as the store checks names)."""
        if self.is_local or visible in self.shared:
            return visible
        if len(visible) > MAX_VISIBLE_CHARS:
            raise MemoryUsageError(
                f"collection name {visible!r}: at most {MAX_VISIBLE_CHARS} characters for a signed-in user "
                "(the rest names whose it is); choose a shorter one"
            )
        return self.prefix + visible

    def visible(self, stored: str) -> str | None:
        """The name this principal knows ``stored`` by; None when it is not theirs (another's, or, for a
        signed-in user, one kept unscoped that is not shared)."""
        if self.is_local or stored in self.shared:
            return stored
        prefix = self.prefix
        return stored[len(prefix) :] if stored.startswith(prefix) else None

    def not_found(self, error: CollectionNotFoundError, existing: Iterable[str]) -> CollectionNotFoundError:
        """``error`` (a store's, naming a stored name and listing every collection) as this principal may
        read it: their name, and only their collections."""
        if self.is_local:
            return error
        names = [name for name in (self.visible(stored) for stored in existing) if name is not None]
        return CollectionNotFoundError(self.visible(error.collection) or error.collection, sorted(names))


LOCAL_SCOPE = CollectionScope()

# The scope of the request being served (the server sets it per request); the local user's elsewhere.
current: ContextVar[CollectionScope] = ContextVar("kernel_app_collection_scope", default=LOCAL_SCOPE)


def current_scope() -> CollectionScope:
    return current.get()


@contextlib.contextmanager
def using_scope(scope: CollectionScope) -> Iterator[CollectionScope]:
    """Run a block (and the tasks it starts, which copy the context) in ``scope``."""
    token = current.set(scope)
    try:
        yield scope
    finally:
        current.reset(token)


__all__ = ["LOCAL_SCOPE", "MAX_VISIBLE_CHARS", "CollectionScope", "current", "current_scope", "using_scope"]
