"""What a test leaves on asyncio's shared loop once semantic-kernel has applied nest_asyncio.

semantic-kernel calls ``nest_asyncio.apply()`` process-wide the first time a handlebars or jinja2 template
calls a kernel function (semantic_kernel/prompt_template/utils/template_function_helpers.py). From then
on ``asyncio.run`` reuses one loop and does not cancel the tasks a coroutine left behind, so they run
again inside the next test's ``asyncio.run``. A later prompt_toolkit test met a failing leftover there:
prompt_toolkit's loop exception handler then asks "Press ENTER to continue..." on stdin, which under
pytest fails at once and raises again, and the worker spun for ever, growing. ``cancel_leftover_tasks``
does what ``asyncio.run`` would have done at the end of each test.
"""

from __future__ import annotations

import asyncio
import warnings


def cancel_leftover_tasks() -> int:
    """Cancel and wait for the tasks left on nest_asyncio's shared loop; how many there were."""
    if not getattr(asyncio, "_nest_patched", False):
        return 0  # plain asyncio.run closes its loop: nothing is shared between tests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return 0
    if loop.is_closed() or loop.is_running():
        return 0
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    return len(pending)
