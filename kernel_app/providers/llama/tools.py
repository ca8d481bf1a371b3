"""Function calling for the local llama.cpp service, in OpenAI's shapes.

semantic-kernel's auto function calling puts ``tools`` and ``tool_choice`` on the settings and keeps
``FunctionCallContent`` / ``FunctionResultContent`` in the chat history. This module turns those into
the OpenAI request llama.cpp's server takes (``tools``, assistant ``tool_calls``, ``tool`` messages: the
GGUF's own Jinja template renders them) and turns the answer back into ``FunctionCallContent``.

Two things llama.cpp and the models do that are handled here, each on purpose and tested:

* llama.cpp parses the ``arguments`` of every tool call in the history as JSON and refuses the whole
  request when one does not parse ("Failed to parse tool call arguments as JSON"). A model's malformed
  call must still go back to it with semantic-kernel's "arguments are malformed" result, as it does for
  OpenAI, so such arguments are sent as a JSON *string* holding the model's text (the template then
  shows the model what it wrote, quoted).
* llama.cpp only recognises a call in the format of the model's template (Qwen2.5: ``<tool_call>{...}
  </tool_call>``, the profile's ``tool_call_format``). Qwen2.5-Coder does not write those tags: it
  answers with the bare call object, often in a ```json fence, which llama.cpp returns as plain text
  (docs/models.md). An answer that is nothing but such objects (``{"name": ..., "arguments": {...}}``,
  braces sometimes doubled) is read as tool calls here, for any model; anything else stays text. A call
  object whose JSON is broken but whose ``name`` is an offered tool becomes a call with the broken
  arguments, so semantic-kernel sends the error back.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from semantic_kernel.contents import (
    ChatHistory,
    FunctionCallContent,
    FunctionResultContent,
    TextContent,
)
from semantic_kernel.contents.kernel_content import KernelContent
from semantic_kernel.contents.utils.author_role import AuthorRole
from semantic_kernel.exceptions import ServiceInvalidExecutionSettingsError

Message = dict[str, Any]

_CALL_KEYS = {"name", "arguments", "parameters"}
_OPENING_FENCE = re.compile(r"^```(?:json)?[ \t]*", re.I)
# <tool_call> is Qwen's own tag; the 1.5B also wraps a call in the template's other tags, <tools/>, <tools>,
# <tool_response> (docs/models.md). Any <tool...> tag around a call object is noise.
_TAG = r"</?tool[a-z_-]*\s*/?>"
_TAGS = re.compile(_TAG)
_LEADING_TAG = re.compile(_TAG)
# The start of a call object that max_tokens cut off: '{', '{"na', '{"name": "Math-multiply", "argu'.
_CUT_CALL = re.compile(r'\{\s*(?:"name"\s*:.*|"(?:n(?:a(?:m(?:e)?)?)?)?)?\Z', re.S)
_TAG_NAMES = ("<tool_call>", "<tools/>", "<tools>", "</tools>", "<tool_response>")
# A call object whose JSON does not parse: the name, then whatever the model wrote as arguments.
_BROKEN_CALL = re.compile(
    r'^\{\s*"name"\s*:\s*"(?P<name>[^"]+)"\s*,\s*"(?:arguments|parameters)"\s*:\s*(?P<args>.*)$', re.S
)


def new_call_id() -> str:
    return f"call_{secrets.token_hex(8)}"


# region request


def tool_request(tools: list[dict[str, Any]] | None, tool_choice: str | None) -> dict[str, Any]:
    """The ``tools`` part of a llama.cpp request; empty when no tools are offered."""
    if not tools:
        return {}
    return {"tools": tools, "tool_choice": tool_choice or "auto", "parallel_tool_calls": True}


# The tool schemas may take at most half the context: the rest is for the messages and the answer.
TOOLS_SHARE_OF_CONTEXT = 2


def check_tools_fit(tools: list[dict[str, Any]] | None, n_ctx: int, chars_per_token: int = 4) -> None:
    """A one-line error when the tool schemas alone would take over half the model's context.

    ``chars_per_token``: characters of JSON schema per token, the profile's ``schema_chars_per_token``
    (4, measured with Qwen's tokenizer on semantic-kernel's tool schemas; docs/models.md).

    The GGUF's template puts every schema in the prompt: 46 functions are ~3,800 tokens, which overflow
    a 4,096-token context (llama.cpp then refuses the request) or, just under it, cost minutes of prompt
    evaluation on a CPU before the first token.
    """
    if not tools:
        return
    tokens = len(json.dumps(tools, ensure_ascii=False)) // chars_per_token
    if tokens > n_ctx // TOOLS_SHARE_OF_CONTEXT:
        raise ServiceInvalidExecutionSettingsError(
            f"{len(tools)} functions offered to the local model take ~{tokens} tokens of its {n_ctx}-token "
            f"context (at most {n_ctx // TOOLS_SHARE_OF_CONTEXT}): offer fewer (an allow-list of the relevant ones)"
        )


def text_parameters(tools: list[dict[str, Any]] | None, functions: Iterable[Any]) -> None:
    """Type a prompt function's variables as text in its tool schema (in place).

    semantic-kernel gives every prompt variable without a JSON schema the type "object", so the model was
    shown ``"input": {"type": "object", "description": "The text to rewrite"}``: a small model then passes
    an object where the function wants text. Only an untyped variable of a prompt function changes.
    """
    prompts = {f.fully_qualified_name: f for f in functions if getattr(f, "is_prompt", False)}  # "Plugin-Function"
    for tool in tools or ():
        function = tool.get("function") or {}
        metadata = prompts.get(str(function.get("name")))
        if metadata is None:
            continue
        properties = (function.get("parameters") or {}).get("properties") or {}
        for parameter in metadata.parameters:
            schema = properties.get(parameter.name)
            if not isinstance(schema, dict) or parameter.type_:
                continue
            if schema.get("type") == "object" and "properties" not in schema:  # untyped
                schema["type"] = "string"


def offered_names(tools: list[dict[str, Any]] | None) -> set[str]:
    return {str((tool.get("function") or {}).get("name")) for tool in tools or () if isinstance(tool, Mapping)}


def call_arguments(arguments: Any) -> str:
    """A call's arguments as the JSON text llama.cpp needs in the history (see the module docstring)."""
    if arguments is None or arguments == "":
        return "{}"
    if isinstance(arguments, Mapping):
        return json.dumps(dict(arguments), ensure_ascii=False)
    text = str(arguments)
    try:
        json.loads(text)
    except ValueError:
        # llama.cpp would refuse the request; a JSON string keeps what the model wrote.
        return json.dumps(text, ensure_ascii=False)
    return text


def result_text(result: Any) -> str:
    """A function result as the tool message's text.

    semantic-kernel 1.45 keeps a prompt function's result as its list of ``ChatMessageContent`` and its
    OpenAI connector sends ``str()`` of that list (the messages' reprs); their text is sent here instead.
    """
    if isinstance(result, str):
        return result
    if isinstance(result, list | tuple) and result and all(isinstance(item, KernelContent) for item in result):
        return "\n".join(str(item) for item in result)  # str() of a message or text content is its text
    if result is None:
        return ""
    if isinstance(result, dict | list):
        try:
            return json.dumps(result, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


def llama_messages(chat_history: ChatHistory) -> list[Message]:
    """ChatHistory → OpenAI messages (tool calls and results included); the GGUF's template renders them."""
    messages: list[Message] = []
    for message in chat_history.messages:
        role = message.role
        if role == AuthorRole.TOOL:
            results = [item for item in message.items if isinstance(item, FunctionResultContent)]
            for item in results:
                messages.append({"role": "tool", "tool_call_id": item.id or "", "content": result_text(item.result)})
            if not results:  # a tool message without results: its text, so nothing is lost
                messages.append({"role": "tool", "tool_call_id": "", "content": message.content or ""})
            continue
        calls = [item for item in message.items if isinstance(item, FunctionCallContent)]
        if role == AuthorRole.ASSISTANT and calls:
            text = "".join(item.text or "" for item in message.items if isinstance(item, TextContent))
            messages.append(
                {
                    "role": "assistant",
                    "content": text or None,
                    "tool_calls": [
                        {
                            "id": call.id or "",
                            "type": "function",
                            "function": {"name": call.name or "", "arguments": call_arguments(call.arguments)},
                        }
                        for call in calls
                    ],
                }
            )
            continue
        name = "system" if role == AuthorRole.DEVELOPER else role.value
        messages.append({"role": name, "content": message.content or ""})
    return messages


# endregion

# region answer


@dataclass
class StreamedCalls:
    """llama.cpp's streamed ``delta.tool_calls`` fragments, joined by index (OpenAI's shape)."""

    calls: dict[int, dict[str, str]] = field(default_factory=dict)

    def add(self, fragments: Iterable[Mapping[str, Any]]) -> None:
        for position, fragment in enumerate(fragments):
            index = fragment.get("index")
            key = index if isinstance(index, int) else position
            call = self.calls.setdefault(key, {"id": "", "name": "", "arguments": ""})
            call["id"] = fragment.get("id") or call["id"]
            function = fragment.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""

    def contents(self) -> list[FunctionCallContent]:
        return [
            FunctionCallContent(
                id=call["id"] or new_call_id(), index=index, name=call["name"], arguments=call["arguments"]
            )
            for index, call in sorted(self.calls.items())
        ]


def _tool_name(name: str, offered: set[str]) -> str:
    # "Math.add" for "Math-add": the dotted name the app shows, mapped only onto an offered tool.
    dashed = name.replace(".", "-", 1)
    return dashed if name not in offered and dashed in offered else name


def _unwrapped(text: str) -> str:
    # A ```json fence around the answer, closed or not (max_tokens may cut it off).
    body = _OPENING_FENCE.sub("", text.strip(), count=1).strip()
    body = _TAGS.sub("\n", body.removesuffix("```")).strip()
    if body.startswith("{{") and body.endswith("}}"):
        # Doubled braces ({{"name": ...}}, Qwen2.5-Coder-1.5B; docs/models.md): "{{" never starts valid
        # JSON, so one pair is dropped.
        body = body[1:-1]
    return body


def calls_in_text(text: str, offered: set[str]) -> list[FunctionCallContent] | None:
    """The tool calls an answer consists of, or ``None`` when it is an answer in words (see the docstring)."""
    if not offered:
        return None
    body = _unwrapped(text)
    if not body.startswith(("{", "[")):
        return None
    decoder = json.JSONDecoder()
    objects: list[Any] = []
    position = 0
    try:
        while position < len(body):
            if objects and not body[position:].strip("}"):
                # Surplus closing braces (braces doubled unevenly: {{"name": ..., "arguments": {...}}}}),
                # so "}" alone after a whole call is noise.
                break
            value, position = decoder.raw_decode(body, position)
            objects.extend(value if isinstance(value, list) else [value])
            while position < len(body) and body[position] in " \t\r\n,;":
                position += 1
    except ValueError:
        if not objects:
            return _broken_call(body, offered)
        if not _CUT_CALL.match(body[position:]):
            return None  # whole calls, then words: an answer
        # Whole calls, then the start of another cut off by max_tokens (the 0.5B repeats its call until
        # the tokens run out; docs/models.md): the whole ones are the calls.
    calls = []
    seen: set[tuple[str, str]] = set()
    for value in objects:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not set(value) <= _CALL_KEYS:
            return None
        name = _tool_name(value["name"], offered)
        has_arguments = "arguments" in value or "parameters" in value
        if not has_arguments and name not in offered:
            return None  # {"name": "Bob"} is an answer in JSON, not a call
        arguments = value.get("arguments", value.get("parameters"))
        once = (name, json.dumps(arguments, sort_keys=True, default=str))
        if once in seen:
            continue  # the same call again is the model repeating itself, not a second request
        seen.add(once)
        calls.append(
            FunctionCallContent(
                id=new_call_id(),
                index=len(calls),
                name=name,
                arguments=arguments if isinstance(arguments, str) else json.dumps(arguments or {}, ensure_ascii=False),
            )
        )
    return calls or None


def _broken_call(body: str, offered: set[str]) -> list[FunctionCallContent] | None:
    match = _BROKEN_CALL.match(body)
    if match is None or _tool_name(match.group("name"), offered) not in offered:
        return None  # not a call to a tool on offer: it stays text
    arguments = match.group("args").strip()
    if arguments.endswith("}") and arguments.count("{") < arguments.count("}"):
        arguments = arguments[:-1].rstrip()  # the call object's own closing brace
    name = _tool_name(match.group("name"), offered)
    return [FunctionCallContent(id=new_call_id(), index=0, name=name, arguments=arguments)]


def could_be_call(text: str) -> bool:
    """Whether a streamed answer so far may still turn out to be a call object (so it is held back)."""
    rest = text.lstrip()
    if rest.startswith("```"):
        rest = rest[3:]
        if "json".startswith(rest.lower()):  # the fence's language tag is not complete yet
            return True
        if rest.lower().startswith("json"):
            rest = rest[4:]
        rest = rest.lstrip()
    elif "```".startswith(rest):
        return True
    while match := _LEADING_TAG.match(rest):  # <tool_call>, or the made-up <tools/> and <tools></tools>
        rest = rest[match.end() :].lstrip()
    if rest and any(tag.startswith(rest) for tag in _TAG_NAMES):  # a tag not complete yet
        return True
    return not rest or rest[0] in "{["


class HeldText:
    """Streams text as it comes unless it may be a call object, which is held until the answer ends."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.held = ""
        self.released = False

    def feed(self, text: str) -> str:
        """The text to stream now ("" while held)."""
        if not self.active or self.released:
            return text
        self.held += text
        if could_be_call(self.held):
            return ""
        self.released, text, self.held = True, self.held, ""
        return text

    def rest(self) -> str:
        text, self.held = self.held, ""
        return text


# endregion
