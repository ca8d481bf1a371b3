"""The prompt a native function falls back to (for a service without structured output, or for text it
does not rewrite itself), kept as a hidden prompt folder beside its module (``_audience_prompt/``,
``_ideate_prompt/``: skprompt.txt and config.json, as in a function folder; the ``_`` keeps the plugin
loader off it), and its answer, streamed to a caller that takes parts as a prompt function's is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from semantic_kernel import Kernel
from semantic_kernel.functions import KernelArguments, KernelFunctionFromPrompt

from kernel_app.base.partial_output import send_part, streaming


def prompt_folder_function(folder: Path, function_name: str, plugin_name: str) -> KernelFunctionFromPrompt:
    """The folder's prompt as a function named ``plugin_name.function_name``, with its config.json's settings."""
    from semantic_kernel.prompt_template import PromptTemplateConfig

    config = PromptTemplateConfig.from_json((folder / "config.json").read_text(encoding="utf-8"))
    config.name = function_name
    config.template = (folder / "skprompt.txt").read_text(encoding="utf-8")
    return KernelFunctionFromPrompt(
        function_name=function_name,
        plugin_name=plugin_name,
        description=config.description,
        prompt_template_config=config,
    )


def prompt_folder_sampling(folder: Path, keys: Iterable[str], fallback: Mapping[str, Any]) -> dict[str, Any]:
    """The ``keys`` of the folder's config.json ("default" settings), so a plugin author tunes one place;
    ``fallback`` when the file is unreadable or sets none of them."""
    try:
        chosen = json.loads((folder / "config.json").read_text(encoding="utf-8"))["execution_settings"]["default"]
    except (OSError, ValueError, KeyError, TypeError):
        return dict(fallback)
    wanted = set(keys)
    return {key: value for key, value in chosen.items() if key in wanted} or dict(fallback)


async def prompt_answer(
    kernel: Kernel, function: KernelFunctionFromPrompt, arguments: KernelArguments, *, stream: bool
) -> str:
    """The function's answer ("" for none); with ``stream``, sent part by part to a caller that streams."""
    if not (stream and streaming()):
        result = await kernel.invoke(function, arguments)
        return str(result) if result is not None else ""
    from kernel_app.base.usage import Usage, report_usage

    parts: list[str] = []
    usage = Usage()
    try:
        async for chunk in kernel.invoke_stream(function, arguments):
            for message in chunk if isinstance(chunk, list) else [chunk]:
                part = str(message) if message is not None else ""
                usage = usage + Usage.from_metadata(getattr(message, "metadata", None))
                parts.append(part)
                send_part(part)
    finally:
        report_usage(usage)  # streamed: record_usage never sees these chunks
    return "".join(parts)
