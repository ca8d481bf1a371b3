"""Interfaces: thin adapters that render the core's events.

The CLI, the REPL and the HTTP server (REST, OpenAI-compatible, MCP, Teams, chat-copilot).
"""
