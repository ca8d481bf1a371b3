"""Answer a question from a memory collection, citing the records the answer came from.

Retrieve first; when nothing passes the relevance floor, say so and do NOT call the model (a model
asked without sources invents an answer). Otherwise the model gets the records, each under its id,
and is told to answer only from them and to cite their ids: as a JSON list constrained to the ids it
was given where the service has structured output, else in square brackets in the text. Citations are
checked against what it was given: ``cited`` holds real ids only, ``unknown_citations`` invented ones.

The prompt is a plain chat history, not a template, so a question or a record containing ``{{`` is
just text. The records pass the kernel's content screen first (a flagged one is left out and reported),
and go in fenced as data with a boundary made for this answer, under a system line that says so
(``kernel_app.providers.content_safety.fence``): instructions written in a record are not followed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import KernelAppError, UsageError, innermost_message
from kernel_app.base.usage import Usage
from kernel_app.kernel.screening import clean_hits, screen_of
from kernel_app.providers.execution_settings import execution_settings, json_schema_format, supports_response_format

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

    from memories import MemoryStore
    from memories.records import SearchHit

DEFAULT_LIMIT = 5
# MiniLM cosines for a relevant sentence are often 0.2-0.5 (see docs/memory.md), so the course's 0.5
# would turn away good sources; 0.2 is the floor the course test uses.
DEFAULT_MIN_RELEVANCE = 0.2
MAX_SOURCE_CHARS = 1500  # per record: a long ingested chunk must not push the question out of a small context

# Said plainly for a small model: asked only to "use the notes", the default tier answered with the notes'
# category labels instead of what they say (docs/models.md).
SYSTEM = """\
Answer the question using only the notes. Each note starts with its id in square brackets; after "A:" \
is what the business owner said. Answer with the specific facts the notes give (the actions, products, \
customers, places and numbers they name), not general advice, in two to four short sentences. Leave \
out notes that do not help with the question. If no note answers the question, say that the notes do \
not answer it.
{form}"""

# With structured output (OpenAI, Azure, the local grammar) the ids are an enum: a small model cannot
# invent one, and it cites far more reliably than in free text (measured on SmolLM2; docs/models.md).
STRUCTURED_FORM = 'Reply in JSON: {"answer": "...", "sources": [ids of the notes used]}'
TEXT_FORM = "After each sentence, cite the id(s) of the note(s) it comes from in square brackets, like [{example}]."
SCHEMA_NAME = "sourced_answer"

_TRUNCATED_ANSWER = re.compile(r'^\{\s*"answer"\s*:\s*"((?:[^"\\]|\\.)*)')
# A sentence ends at . ! or ? followed by a space or the end: "$1.50", "e.g. rye" and "1." stay whole.
_SENTENCE = re.compile(r".*?(?:[.!?]+(?=\s|$)|$)\s*")
_CLAUSE = re.compile(r"(?<=[,;])\s+")
_CONJUNCTION = re.compile(r"^(?:and|or|but|then|so) ")
_CITATION = re.compile(r"\[([^\[\]\n]{1,1200})\](?!\()")  # not a markdown link [text](url)


class AnswerServiceError(KernelAppError):
    """The chat service failed while answering; ``sources`` are the records that had been retrieved."""

    def __init__(self, message: str, sources: list[SearchHit]) -> None:
        super().__init__(message)
        self.sources = sources


@dataclass
class SourcedAnswer:
    """The answer and where it came from.

    ``grounded`` is False when no record passed the floor: ``answer`` then says so and no model ran.
    ``sources`` are the records the model was given (best first); ``cited`` the ids it named that are
    among them; ``unknown_citations`` bracketed ids it named that are not (invented).
    """

    question: str
    collection: str
    answer: str
    grounded: bool
    sources: list[SearchHit] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)
    unknown_citations: list[str] = field(default_factory=list)
    best_relevance: float | None = None
    min_relevance: float = DEFAULT_MIN_RELEVANCE
    usage: Usage = field(default_factory=Usage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "collection": self.collection,
            "answer": self.answer,
            "grounded": self.grounded,
            "sources": [
                {
                    "id": hit.record.id,
                    "text": hit.record.text,
                    "relevance": round(hit.relevance, 4),
                    "metadata": hit.record.metadata,
                    "cited": hit.record.id in self.cited,
                }
                for hit in self.sources
            ],
            "unknown_citations": self.unknown_citations,
            "min_relevance": self.min_relevance,
            "usage": self.usage.to_dict(),
        }

    def with_sources_line(self) -> str:
        """The answer, then ``Sources: [id], ...`` for the cited records.

        When the answer cites none, the line says ``Records given: ...`` instead: they were what the model
        saw, but nothing shows the answer came from them (it may say the notes do not answer at all).
        """
        if not self.grounded:
            return self.answer
        if self.cited:
            text = f"{self.answer}\n\nSources: {', '.join(f'[{i}]' for i in self.cited)}"
        else:
            given = ", ".join(f"[{hit.record.id}]" for hit in self.sources)
            text = f"{self.answer}\n\nRecords given (none cited): {given}"
        if self.unknown_citations:
            text += f"\n(The answer also cites {', '.join(self.unknown_citations)}: no such source was given.)"
        return text


def nothing_found_message(collection: str, min_relevance: float, best: float | None) -> str:
    if best is None:
        return f"Nothing is saved in '{collection}' that matches, so there is nothing to answer from."
    return (
        f"Nothing saved in '{collection}' is relevant enough to answer this (best relevance {best:.2f}, "
        f"floor {min_relevance:.2f}), so I will not guess. Save or ingest notes on it, or lower the floor "
        "(--min-relevance)."
    )


def withheld_message(collection: str, withheld: int) -> str:
    return (
        f"The {withheld} saved text(s) in {collection!r} that match the question were withheld by the content "
        "safety screen, so I will not answer from them."
    )


def find_citations(answer: str, source_ids: list[str]) -> tuple[list[str], list[str]]:
    """(cited ids among ``source_ids`` in order of first mention, other bracketed ids).

    ``[a, b]`` and ``[a][b]`` both count. Bracketed text that is plainly not an id (contains spaces
    and is not a known id) is ignored rather than reported as an invented citation.
    """
    known = set(source_ids)
    lowered = {i.lower(): i for i in source_ids}
    cited: list[str] = []
    unknown: list[str] = []
    for group in _CITATION.findall(answer):
        # The whole group first: an ingested id is a path, which may contain ", ".
        parts = [group.strip()] if _known(group.strip(), known, lowered) else group.split(",")
        for part in (p.strip() for p in parts):
            if not part:
                continue
            match = _known(part, known, lowered)
            if match is not None:
                if match not in cited:
                    cited.append(match)
            elif " " not in part and part not in unknown:
                unknown.append(part)
    return cited, unknown


def _known(part: str, known: set[str], lowered: dict[str, str]) -> str | None:
    return part if part in known else lowered.get(part.lower())


def sources_text(hits: list[SearchHit]) -> str:
    blocks = []
    for hit in hits:
        text = hit.record.text.strip()
        if len(text) > MAX_SOURCE_CHARS:
            text = text[:MAX_SOURCE_CHARS] + " [...]"
        blocks.append(f"[{hit.record.id}] {text}")
    return "\n\n".join(blocks)


async def answer_with_sources(
    kernel: Kernel,
    store: MemoryStore,
    collection: str,
    question: str,
    *,
    limit: int = DEFAULT_LIMIT,
    min_relevance: float = DEFAULT_MIN_RELEVANCE,
    where: Mapping[str, Any] | None = None,
    service_id: str | None = None,
    max_tokens: int = 400,
) -> SourcedAnswer:
    """Retrieve from ``collection``, then answer ``question`` from what was found (see the module doc).

    Raises the store's errors (unknown collection, embedder mismatch) and :class:`AnswerServiceError`
    when the model fails.
    """
    question = question.strip()
    if not question:
        raise UsageError('the question is empty: ask something, e.g. "What are our strengths?"')
    from kernel_app.kernel.screening import require_clean

    await require_clean(screen_of(kernel), question, "input")  # ContentBlockedError: nothing is searched
    # Search with no floor so that, when nothing passes, the message can say how close the best was.
    hits = store.search(collection, question, limit=limit, min_relevance=-1.0, where=where)
    best = hits[0].relevance if hits else None
    sources = [hit for hit in hits if hit.relevance >= min_relevance]
    passing = len(sources)
    sources = await clean_hits(screen_of(kernel), sources)
    result = SourcedAnswer(
        question,
        collection,
        "",
        grounded=bool(sources),
        sources=sources,
        best_relevance=best,
        min_relevance=min_relevance,
    )
    if not sources:
        result.answer = (
            withheld_message(collection, passing) if passing else nothing_found_message(collection, min_relevance, best)
        )
        return result
    ids = [hit.record.id for hit in sources]
    service = _chat_service(kernel, service_id, sources)
    structured = supports_response_format(service)
    options: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0}
    if structured:
        options["response_format"] = json_schema_format(answer_schema(ids), SCHEMA_NAME)
    raw, result.usage = await _ask(service, _history(question, sources, structured), options, sources)
    answer, listed = read_answer(raw)
    result.answer = answer = without_repeats(answer)
    in_text, result.unknown_citations = find_citations(answer, ids)
    result.cited = [i for i in dict.fromkeys([*listed, *in_text]) if i in ids]
    result.unknown_citations += [i for i in listed if i not in ids and i not in result.unknown_citations]
    return result


def answer_schema(ids: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            # No maxLength: llama.cpp cannot compile a large one (see local_llama.check_grammar); a
            # runaway answer is cut by max_tokens, and read_answer keeps the text of a cut-off JSON.
            "answer": {"type": "string"},
            # maxItems: without it SmolLM2 can repeat an id until max_tokens runs out.
            "sources": {"type": "array", "items": {"type": "string", "enum": ids}, "maxItems": len(ids)},
        },
        "required": ["answer", "sources"],
        "additionalProperties": False,
    }


def read_answer(raw: str) -> tuple[str, list[str]]:
    """(answer text, listed source ids) from a structured answer; plain text is the answer itself.

    A service that ignores ``response_format`` (or a truncated answer) still yields its text rather
    than an error: the citations in it are then found in brackets.
    """
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        # strict=False: llama.cpp's JSON grammar lets raw newlines into strings.
        data = json.loads(text, strict=False)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's limit
        cut = _TRUNCATED_ANSWER.match(text)  # max_tokens ran out inside the JSON: keep the answer's text
        if cut:
            try:
                return json.loads(f'"{cut.group(1)}"', strict=False).strip(), []
            except ValueError:  # cut inside an escape sequence
                return cut.group(1).strip(), []
        return raw.strip(), []
    if not isinstance(data, dict) or not isinstance(data.get("answer"), str):
        return raw.strip(), []
    listed = data.get("sources")
    ids = [str(i) for i in listed] if isinstance(listed, list) else []
    return data["answer"].strip(), list(dict.fromkeys(ids))


def without_repeats(text: str) -> str:
    """The text without sentences, or clauses of three words or more, that it already said word for word.

    Small models at temperature 0 loop ("a loyal customer base, a loyal customer base..." or "create
    your own food, and create your own food, and ..." until max_tokens cuts a last clause in half); a
    good model does not repeat itself verbatim, so for it this changes nothing.
    """
    seen_sentences: set[str] = set()
    seen_clauses: set[str] = set()
    paragraphs = []
    for paragraph in text.split("\n"):
        kept = []
        for sentence in _SENTENCE.findall(paragraph):
            key = _words(sentence)
            if len(key.split()) >= 3 and key in seen_sentences:  # "Yes." may well be said twice
                continue
            seen_sentences.add(key)
            sentence = _without_repeated_clauses(sentence, seen_clauses)
            if sentence.strip():
                kept.append(sentence)
        if "".join(kept).strip() or not paragraph.strip():
            paragraphs.append("".join(kept).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(paragraphs)).strip()


def _words(text: str) -> str:
    return " ".join(re.findall(r"[\w'-]+", text.lower()))


def _without_repeated_clauses(sentence: str, seen: set[str]) -> str:
    clauses = _CLAUSE.split(sentence)
    cut_off = not sentence.rstrip().endswith((".", "!", "?"))
    kept = []
    for number, clause in enumerate(clauses, 1):
        key = _CONJUNCTION.sub("", _words(clause))
        # Said before, as a clause or as the end of one ("... are to sell sauce, sell sauce, ...").
        repeated = len(key.split()) >= 3 and any(key == e or e.endswith(" " + key) for e in seen)
        # The loop's last turn, cut off by max_tokens ("..., and sell your").
        truncated = cut_off and number == len(clauses) and any(f" {key} " in f" {e} " for e in seen)
        if repeated or (key and truncated):
            continue
        if len(key.split()) >= 3:
            seen.add(key)
        kept.append(clause)
    if len(kept) == len(clauses):
        return sentence
    if not kept:
        return ""
    text = " ".join(kept).rstrip().rstrip(",;")
    return text + ("" if text.endswith((".", "!", "?")) else ".") + " "


def _history(question: str, sources: list[SearchHit], structured: bool) -> Any:
    from semantic_kernel.contents import ChatHistory

    from kernel_app.providers.content_safety import data_rule, fence, new_boundary

    form = STRUCTURED_FORM if structured else TEXT_FORM.format(example=sources[0].record.id)
    boundary = new_boundary()  # new for every answer: a record cannot close its own fence
    history = ChatHistory()
    history.add_system_message(f"{SYSTEM.format(form=form)}\n{data_rule(boundary)}")
    # Notes and question in one user turn: the small local model ignores notes put in the system message.
    history.add_user_message(f"Notes:\n{fence(sources_text(sources), boundary)}\n\nQuestion: {question}")
    return history


def _chat_service(kernel: Kernel, service_id: str | None, sources: list[SearchHit]) -> ChatCompletionClientBase:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

    try:
        return kernel.get_service(service_id, type=ChatCompletionClientBase)
    except Exception as error:  # KernelServiceNotFoundError and friends
        raise AnswerServiceError(f"answering needs a chat service: {error}", sources) from None


async def _ask(
    service: ChatCompletionClientBase, history: Any, options: dict[str, Any], sources: list[SearchHit]
) -> tuple[str, Usage]:
    try:
        message = await service.get_chat_message_content(history, execution_settings(service, options))
    except KernelAppError:
        raise
    except Exception as error:
        raise AnswerServiceError(
            f"answering failed: the chat service failed: {innermost_message(error)}", sources
        ) from error
    if message is None:
        return "", Usage()
    return message.content or "", Usage.from_metadata(getattr(message, "metadata", None))
