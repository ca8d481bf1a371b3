"""memories.scope: the collection names a principal sees, mapped to the names they are stored under."""

from __future__ import annotations

import asyncio

import pytest

from memories.errors import CollectionNotFoundError, MemoryUsageError
from memories.scope import LOCAL_SCOPE, MAX_VISIBLE_CHARS, CollectionScope, current_scope, using_scope
from memories.store_base import COLLECTION_NAME

ALICE = CollectionScope.of("entra:t:alice", ["handbook"])
BOB = CollectionScope.of("key:0123456789abcdef", ["handbook"])


def test_the_local_user_keeps_the_stored_names() -> None:
    assert LOCAL_SCOPE.stored("docs") == "docs"
    assert LOCAL_SCOPE.visible("docs") == "docs"
    assert LOCAL_SCOPE.visible(ALICE.stored("docs")) == ALICE.stored("docs")  # the machine's user sees all


def test_each_principal_has_their_own_names_and_shares_the_declared_ones() -> None:
    alice, bob = ALICE.stored("docs"), BOB.stored("docs")
    assert alice != bob and "docs" not in (alice, bob)
    assert COLLECTION_NAME.match(alice) and COLLECTION_NAME.match(bob)  # names the store accepts
    assert ALICE.visible(alice) == "docs" and ALICE.visible(bob) is None and BOB.visible(alice) is None
    assert ALICE.visible("docs") is None  # a collection kept unscoped (the local user's) is not a user's
    assert ALICE.stored("handbook") == BOB.stored("handbook") == "handbook"
    assert ALICE.visible("handbook") == "handbook"


def test_a_name_too_long_once_scoped_is_refused_in_one_line() -> None:
    assert ALICE.stored("x" * MAX_VISIBLE_CHARS)
    with pytest.raises(MemoryUsageError, match=f"at most {MAX_VISIBLE_CHARS} characters"):
        ALICE.stored("x" * (MAX_VISIBLE_CHARS + 1))


def test_not_found_names_only_the_callers_collections() -> None:
    existing = [ALICE.stored("docs"), BOB.stored("secret"), "laptop", "handbook"]
    error = ALICE.not_found(CollectionNotFoundError(ALICE.stored("nope"), existing), existing)
    assert str(error) == "no memory collection named 'nope' (collections: docs, handbook)"
    assert "secret" not in str(error) and "laptop" not in str(error)


def test_the_current_scope_is_the_requests_and_its_tasks() -> None:
    assert current_scope() is LOCAL_SCOPE

    async def seen_by_a_task() -> CollectionScope:
        return current_scope()

    async def request() -> CollectionScope:
        with using_scope(ALICE):
            task = asyncio.ensure_future(seen_by_a_task())  # a task copies the context it starts in
        return await task

    assert asyncio.run(request()) is ALICE
    assert current_scope() is LOCAL_SCOPE
