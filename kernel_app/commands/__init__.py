"""The command layer every chat surface shares (REPL, Teams, chat-copilot).

Slash commands, their syntax, sizing and export, over the conversation engine.
"""
