"""The `memory` plugin every kernel gets: recall from, answer from (with sources) and save to the store.

Usable from templates (``{{memory.recall $input}}``), from `kernel-app run memory.recall`, and by planners.
The store opens on first use, so kernels that never touch memory pay nothing.

Collection names are the caller's (:mod:`memories.scope`): on a server, a signed-in user's ``docs`` is
their own, whichever surface called the function (the model's tool call, MCP, a plan); the local user's
names are the stored ones, as always.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from semantic_kernel import Kernel  # resolved at run time: semantic-kernel injects the kernel by this annotation
from semantic_kernel.functions import kernel_function

from memories.errors import CollectionNotFoundError
from memories.scope import current_scope


class MemoryPlugin:
    """Recall relevant saved texts, answer from them with sources, or save a text, in a memory collection."""

    def __init__(self, open_store: Callable[[], Any], *, screen: Any = None) -> None:
        """``screen``: the content screen each recalled record passes before it is returned (a
        ``kernel_app.providers.content_safety.Screen``; None: none)."""
        self._open_store = open_store
        self._store: Any = None
        self._screen = screen

    def _get_store(self) -> Any:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    @kernel_function(
        name="recall",
        description="Find saved texts relevant to a question in a memory collection; returns them one per line "
        "as '[id] text', or an empty string when nothing passes the relevance floor.",
    )
    async def recall(
        self,
        input: Annotated[str, "The question or topic to look up"],
        collection: Annotated[str, "The memory collection, e.g. SWOT"] = "default",
        limit: Annotated[int, "How many texts at most"] = 3,
        min_relevance: Annotated[float, "Relevance floor between 0 and 1"] = 0.2,
    ) -> Annotated[str, "The matching texts, best first"]:
        store = self._get_store()
        collection = current_scope().stored(collection)
        if collection not in {c.name for c in store.collections()}:
            return ""
        hits = store.search(collection, input, limit=int(limit), min_relevance=float(min_relevance))
        from kernel_app.kernel.screening import clean_hits

        hits = await clean_hits(self._screen, hits)  # a flagged record never reaches a prompt
        return "\n".join(f"[{hit.record.id}] {hit.record.text}" for hit in hits)

    @kernel_function(
        name="ask",
        description="Answer a question only from the texts saved in a memory collection, citing their ids; "
        "says so instead of guessing when nothing saved is relevant.",
    )
    async def ask(
        self,
        # Injected by semantic-kernel; kept out of tool schemas so function calling can use memory.ask.
        kernel: Annotated[Kernel, {"include_in_function_choices": False}],
        input: Annotated[str, "The question"],
        collection: Annotated[str, "The memory collection, e.g. SWOT"] = "default",
        limit: Annotated[int, "How many saved texts to answer from, at most"] = 5,
        min_relevance: Annotated[float, "Relevance floor between 0 and 1"] = 0.2,
    ) -> Annotated[str, "The answer, then 'Sources: [id], ...' naming the saved texts it cites"]:
        from kernel_app.base.usage import report_usage
        from kernel_app.kernel.sourced_answer import answer_with_sources

        scope, store = current_scope(), self._get_store()
        try:
            result = await answer_with_sources(
                kernel, store, scope.stored(collection), input, limit=int(limit), min_relevance=float(min_relevance)
            )
        except CollectionNotFoundError as error:  # names the caller's collections, never another's
            raise scope.not_found(error, [c.name for c in store.collections()]) from None
        report_usage(result.usage)  # its model call is no prompt function: record_usage never sees it
        return result.with_sources_line()

    @kernel_function(name="save", description="Save a text into a memory collection; returns its id.")
    def save(
        self,
        input: Annotated[str, "The text to remember"],
        collection: Annotated[str, "The memory collection, e.g. SWOT"] = "default",
        id: Annotated[str, "Record id; empty for a generated one, an existing id is replaced"] = "",
    ) -> Annotated[str, "The record id"]:
        return self._get_store().save(current_scope().stored(collection), input, id=id or None)


class TextMemoryPlugin:
    """Semantic Kernel's ``TextMemoryPlugin`` names and arguments, on our memory (plugins/README.md lists it).

    Templates from the wild call ``{{TextMemoryPlugin.recall $q collection='facts' relevance=0.7 limit=2}}``
    and ``{{TextMemoryPlugin.save $text key='k1'}}``: .NET names the query ``input``, Python ``ask``; both
    are accepted. ``collection`` defaults to our ``default`` (not SK's ``generic``), so what
    ``kernel-app memory save`` stored is what a template recalls. As in Semantic Kernel, recall returns the
    one text when ``limit`` is 1 and a JSON list of texts otherwise.
    """

    def __init__(self, memory: MemoryPlugin) -> None:
        self._memory = memory

    @kernel_function(name="recall", description="Semantic Kernel's TextMemoryPlugin.recall, on memory.")
    async def recall(
        self,
        input: Annotated[str, "The question or topic to look up"] = "",
        collection: Annotated[str, "The memory collection"] = "default",
        relevance: Annotated[float, "Relevance floor between 0 and 1"] = 0.2,
        limit: Annotated[int, "How many texts at most"] = 1,
        ask: Annotated[str, "The query, as Python Semantic Kernel names it"] = "",
    ) -> Annotated[str, "The text (limit 1) or a JSON list of texts, best first"]:
        import json

        from kernel_app.kernel.screening import clean_hits

        store = self._memory._get_store()
        query = input or ask
        collection = current_scope().stored(collection)  # the caller's own, as memory.recall reads it
        if not query or collection not in {c.name for c in store.collections()}:
            return "" if int(limit) == 1 else "[]"
        hits = store.search(collection, query, limit=int(limit), min_relevance=float(relevance))
        hits = await clean_hits(self._memory._screen, hits)  # a flagged record never reaches a prompt
        texts = [hit.record.text for hit in hits]
        if int(limit) == 1:
            return texts[0] if texts else ""
        return json.dumps(texts, ensure_ascii=False)

    @kernel_function(name="save", description="Semantic Kernel's TextMemoryPlugin.save, on memory.")
    def save(
        self,
        input: Annotated[str, "The text to remember"] = "",
        key: Annotated[str, "Record id; empty for a generated one, an existing id is replaced"] = "",
        collection: Annotated[str, "The memory collection"] = "default",
        text: Annotated[str, "The text, as Python Semantic Kernel names it"] = "",
    ) -> Annotated[str, "The record id"]:
        return self._memory.save(input or text, collection, key)
