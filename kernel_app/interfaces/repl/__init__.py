"""The chat REPL: a thin terminal adapter over :class:`kernel_app.commands.dispatch.ChatSession`.

``reader`` reads lines (prompt_toolkit on a terminal, plain stdin otherwise), ``render`` shows the
session's events and replies (rich on a terminal, plain text when piped), ``loop`` ties them
together. Nothing here runs a model loop of its own: the engine does, and emits events.
"""
