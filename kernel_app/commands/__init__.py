"""The command layer every chat surface shares (REPL, Teams, chat-copilot), over the conversation engine.

* :mod:`.dispatch`: :class:`~.dispatch.ChatSession`, one line in, one :class:`~.dispatch.Reply` out; the
  command table and the commands themselves.
* :mod:`.listing`: what ``/help`` and ``/functions`` list, as data (the terminal's aligned text is its
  ``text()``; the chat surfaces render markdown, Teams' manifest takes its command menu from it).
* :mod:`.syntax`: reading a command's arguments (``> NAME``, ``$NAME``, ``name=value``, ``/plan``'s
  options, ``STEP name=value`` edits).
* :mod:`.sizing`: how long an answer may be, and whether the tool schemas fit the model's context.
* :mod:`.export`: a stored conversation as markdown.

Planners are made by :mod:`planners.factory`, as on every other surface.
"""
