"""MCP with the real ``mcp`` client: over streamable HTTP at /mcp (uvicorn on loopback) and over stdio
(``kernel-app mcp`` as a subprocess, its model a loopback OpenAI stub)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

from kernel_app.interfaces.server.mcp_server import kernel_arguments
from tests.support.cli import ROOT, cli_env
from tests.support.server import make_app, running
from tests.support.tool_scripted import ToolScripted

pytestmark = pytest.mark.e2e  # uvicorn on loopback, and kernel-app mcp as a subprocess


async def exercise(session: ClientSession) -> dict[str, Any]:
    """What every transport must give: named tools, text results, errors as results, prompts."""
    info = await session.initialize()
    assert info.serverInfo.name == "kernel-app"
    listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert {"Math-add", "Text-upper", "BusinessThinking-SWOT", "memory-save", "Writer-ShortPoem"} <= set(listed)
    add = listed["Math-add"]
    assert set(add.inputSchema["properties"]) == {"a", "b"} and "server" not in add.inputSchema["properties"]
    assert add.annotations.readOnlyHint is True and listed["memory-save"].annotations.destructiveHint is True
    summed = await session.call_tool("Math-add", {"a": 2, "b": 3})
    assert not summed.isError and summed.content[0].text == "5"
    upper = await session.call_tool("Text-upper", {"input": "bakery"})
    assert upper.content[0].text == "BAKERY"
    failed = await session.call_tool("Math-divide", {"a": 1, "b": 0})
    assert failed.isError and "divide" in failed.content[0].text
    unknown = await session.call_tool("Math-nothing", {})
    assert unknown.isError and "Plugin-Function" in unknown.content[0].text
    prompts = {p.name: p for p in (await session.list_prompts()).prompts}
    assert "Writer-ShortPoem" in prompts and "Math-add" not in prompts
    return listed


async def test_mcp_over_streamable_http(tmp_path: Path) -> None:
    service = ToolScripted(["Warm bread at dawn"])
    with running(make_app(tmp_path, service)) as url:
        async with streamablehttp_client(f"{url}/mcp") as (read, write, _), ClientSession(read, write) as session:
            await exercise(session)
            poem = await session.call_tool("Writer-ShortPoem", {"input": "bread"})
            assert poem.content[0].text == "Warm bread at dawn"  # a prompt function's text, not a repr
            prompt = await session.get_prompt("Writer-ShortPoem", {"input": "bread"})
            assert "bread" in prompt.messages[0].content.text


def test_an_argument_named_settings_is_a_variable_not_the_execution_settings() -> None:
    # KernelArguments(**arguments) took it for the execution settings and failed ("no attribute service_id").
    arguments = kernel_arguments({"settings": "formal", "input": "bread"})
    assert dict(arguments) == {"settings": "formal", "input": "bread"} and arguments.execution_settings is None
    assert dict(kernel_arguments(None)) == {}


def swot_answer() -> str:
    quadrant = {
        name: [{"point": f"{name} point {n}", "why": f"it matters {n}"} for n in range(1, 4)]
        for name in ("strengths", "weaknesses", "opportunities", "threats")
    }
    return json.dumps(quadrant)


async def test_mcp_over_stdio(openai_server, tmp_path: Path) -> None:
    openai_server.queue("Loaves rise at night", swot_answer())
    env = cli_env(
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=openai_server.base_url,
        OPENAI_API_KEY="test",
        KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
    )
    params = StdioServerParameters(command=sys.executable, args=["-m", "kernel_app", "mcp"], env=env, cwd=str(ROOT))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await exercise(session)
        poem = await session.call_tool("Writer-ShortPoem", {"input": "bread"})
        assert poem.content[0].text == "Loaves rise at night"
        swot = await session.call_tool("BusinessThinking-SWOT", {"input": "a bakery in a college town"})
        assert not swot.isError and "strengths point 1" in swot.content[0].text
        assert swot.content[0].text.count("|") > 20  # four markdown tables, as text
        saved = await session.call_tool("memory-save", {"input": "We bake at night", "collection": "Notes"})
        assert not saved.isError and json.dumps(saved.content[0].text)
    assert "a bakery in a college town" in openai_server.requests[-1].prompt
