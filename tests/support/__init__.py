"""What tests share, and the only place they share it from (a test module never imports another).

- ``cli``: ``run_cli``/``cli_env`` run ``kernel-app`` in a subprocess guarded against the network; ``ROOT``.
- ``tool_scripted``: ``ToolScripted``, the scripted service as one that calls functions; ``engine_with``.
- ``server``: ``running(app)`` serves an app with uvicorn on loopback; ``make_app`` over a scripted service.
- ``openai_stub``, ``tool_call_server``: loopback OpenAI-compatible servers (text; tool calls).
- ``fake_llama``: a stand-in for llama.cpp behind the real embedded chat service.
- ``teams``, ``copilot_client``: Teams' fake connector and activities; the chat-copilot web app's calls.
- ``browser``: a headless Chromium over the DevTools protocol (the chat-copilot web app in a real browser).
- ``pty_chat``: ``kernel-app chat`` on a pseudo-terminal. ``spies``, ``growth``: invocation counts, timing.
- ``inner_loop``: the ``e2e`` marker's rules and the guard behind ``pytest -m "not e2e"``.
- ``nested_loop``: cleans what semantic-kernel's process-wide nest_asyncio leaves between tests.

Scripting a model in a test: ``ScriptedChatCompletion([call("Math.add", a=2, b=3), "5"])`` (kernel_app).
"""
