"""Running eval files on the server: ``POST /v1/evals``, progress as server-sent events, then the result.

What may be run, and read: an eval file (or folder of them) under the server's plugin folders, named by a
path relative to one of them (``BusinessThinking/SWOT.evals.yaml``), or the eval file's YAML in the body.
Nothing else on the server's disk is read for the caller: no absolute path, no ``..``, no file that is not
an eval file, no symlink out of the plugin folders, and a ``dataset:`` only beside a plugin folder's eval
file (a posted one may not name any). The cases run on the server's kernel and model, one place at the
generation gate for the whole run, with the outputs cached as ``kernel-app eval`` caches them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from kernel_app.base.errors import KernelAppError, innermost_message
from kernel_app.interfaces.server.errors import ApiError
from kernel_app.interfaces.server.limits import CLIENT_GONE, Busy, unless_disconnected
from kernel_app.interfaces.server.sse import HEADERS, frame
from kernel_app.interfaces.server.state import ServerState, State

if TYPE_CHECKING:
    from kernel_app.kernel.evals.cache import OutputStore
    from kernel_app.kernel.evals.runner import CaseResult, Target
    from kernel_app.kernel.evals.spec import EvalFile

router = APIRouter(prefix="/v1/evals", tags=["evals"])

POSTED = Path("posted.evals.yaml")  # how errors name an eval file sent in the body
MAX_RUNS = 500  # cases × repeats one request may ask for


class EvalRun(BaseModel):
    path: str | None = Field(
        default=None,
        description="An eval file or a folder of them, relative to one of the server's plugin folders "
        "(e.g. BusinessThinking/SWOT.evals.yaml)",
    )
    eval: str | None = Field(default=None, description="The eval file's YAML itself (it may not name a dataset)")
    function: str | None = Field(default=None, description="Plugin.Function, for a file that names none")
    repeat: int = Field(default=1, ge=1, le=20, description="Runs per case")
    cache: bool = Field(default=True, description="Reuse outputs cached by (rendered prompt, settings, model)")
    stream: bool = Field(
        default=True, description="Progress as server-sent events, then the result (else the result as JSON)"
    )


@router.post(
    "", summary="Run an eval file (SSE progress, then the same JSON as `kernel-app eval --json`)", response_model=None
)
async def run_evals_route(body: EvalRun, state: State, request: Request) -> Any:
    from kernel_app.kernel.runner import resolve_function

    files = _eval_files(state, body)
    runs = sum(len(f.cases) for f in files) * body.repeat
    if runs > MAX_RUNS:
        raise ApiError(400, f"{runs} runs (cases × repeat) asked for, at most {MAX_RUNS}: split the eval file")
    report = getattr(state, "load_report", None)
    for eval_file in files:  # a wrong function name is a 404 before anything waits
        resolve_function(state.kernel, eval_file.function, report)
    from kernel_app.kernel.evals.runner import Target

    target = Target(state.model_name, state.kernel, report)
    state.gate.check()  # 429 now rather than a stream that waits behind a full queue
    events = _events(state, files, target, body)
    if body.stream:
        return StreamingResponse(events, media_type="text/event-stream", headers=HEADERS)

    async def last_result() -> Any:
        result: Any = None
        async for event in _results(state, files, target, body, None):
            result = event
        return result

    finished, results = await unless_disconnected(request.receive, last_result())
    if not finished:
        return Response(status_code=CLIENT_GONE)
    if isinstance(results, str) or results is None:  # the run failed: its one line
        raise ApiError(422, results or "the eval stopped", "eval_failed")
    from kernel_app.kernel.evals.report import payload

    return payload(results)


async def _events(state: ServerState, files: list[EvalFile], target: Target, body: EvalRun) -> AsyncIterator[str]:
    """``started``, a ``progress`` per run, then ``result`` (the ``--json`` payload) or ``error``."""
    from kernel_app.kernel.evals.report import payload

    progress: asyncio.Queue[tuple[int, int, str]] = asyncio.Queue()
    total = sum(len(f.cases) for f in files) * body.repeat
    yield frame({"type": "started", "runs": total, "model": target.name, "functions": [f.function for f in files]})
    results = _results(state, files, target, body, progress)
    try:
        async for outcome in results:
            while not progress.empty():
                done, total, label = progress.get_nowait()
                yield frame({"type": "progress", "done": done, "total": total, "label": label})
            if isinstance(outcome, str):
                yield frame({"type": "error", "message": outcome})
            elif outcome is not None:
                yield frame(payload(outcome), event="result")
    finally:  # a client that goes away stops the run and frees its place at the gate now, not at collection
        await results.aclose()


async def _results(
    state: ServerState,
    files: list[EvalFile],
    target: Target,
    body: EvalRun,
    progress: asyncio.Queue[tuple[int, int, str]] | None,
) -> AsyncGenerator[list[CaseResult] | str | None, None]:
    """None after each run (its progress is in the queue), then the results, or the failure's one line.

    The run holds one place at the generation gate; its deadline is the server's per-request one for
    each run it makes.
    """
    from kernel_app.kernel.evals.runner import run_evals

    ticks: asyncio.Queue[None] = asyncio.Queue()

    def tick(done: int, total: int, label: str) -> None:
        if progress is not None:
            progress.put_nowait((done, total, label))
        ticks.put_nowait(None)

    try:
        await state.gate.acquire()
    except Busy as busy:
        yield str(busy)
        return
    try:
        # In a thread: with database_url the cache is a PostgreSQL pool, whose opening waits on the network.
        cache = await asyncio.to_thread(_open_cache, state) if body.cache else None
    except KernelAppError as error:  # the cache file or database is unusable: one line, and the gate freed
        state.gate.release()
        yield str(error).splitlines()[0]
        return
    task = asyncio.ensure_future(run_evals(files, [target], repeat=body.repeat, progress=tick, cache=cache))
    task.add_done_callback(lambda _: ticks.put_nowait(None))
    deadline = state.request_timeout * sum(len(f.cases) for f in files) * body.repeat if state.request_timeout else None
    loop = asyncio.get_running_loop()
    ends = loop.time() + deadline if deadline else None
    try:
        while not task.done():
            try:
                await asyncio.wait_for(ticks.get(), None if ends is None else max(0.0, ends - loop.time()))
            except asyncio.TimeoutError:
                task.cancel()
                yield f"the eval took longer than {deadline:g} s and was stopped"
                return
            yield None
        try:
            yield task.result()
        except KernelAppError as error:
            yield str(error).splitlines()[0]
        except Exception as error:  # a bug of a plugin's: its one line, not a dropped stream
            yield f"the eval failed: {innermost_message(error)}"
    finally:
        if not task.done():
            task.cancel()
        state.gate.release()
        if cache is not None:
            cache.close()


def _open_cache(state: ServerState) -> OutputStore:
    """The server's eval cache: PostgreSQL with database_url (shared by its instances), else the data folder's."""
    from kernel_app.kernel.evals.cache import open_output_cache

    return open_output_cache(state.settings)


def _eval_files(state: ServerState, body: EvalRun) -> list[EvalFile]:
    """The eval files the request names (see the module's docstring for what may be read)."""
    from kernel_app.kernel.evals.spec import parse_eval_text

    if (body.path is None) == (body.eval is None):
        raise ApiError(400, "give either `path` (an eval file under a plugin folder) or `eval` (its YAML)")
    if body.eval is not None:
        return [parse_eval_text(body.eval, POSTED, body.function, datasets_under=())]
    from kernel_app.kernel.evals.spec import load_eval_file

    roots = _plugin_roots(state)
    return [load_eval_file(path, body.function, datasets_under=roots) for path in _paths_under(roots, body.path or "")]


def _plugin_roots(state: ServerState) -> list[Path]:
    """The plugin folders, the user's first (they override the built-in ones, as the kernel loads them)."""
    from kernel_app.kernel.builder import plugin_directories

    return [directory.path.resolve() for directory in reversed(plugin_directories(state.settings))]


def _paths_under(roots: list[Path], requested: str) -> list[Path]:
    from kernel_app.kernel.evals.spec import EVALS_FILE, EVALS_SUFFIX, discover

    relative = Path(requested)
    if not requested or relative.is_absolute() or ".." in relative.parts:
        raise ApiError(400, f"path {requested!r}: give it relative to a plugin folder, e.g. Plugin/NAME.evals.yaml")
    for root in roots:
        candidate = root / relative
        if not candidate.exists():
            continue
        if not candidate.resolve().is_relative_to(root):
            raise ApiError(403, f"path {requested!r} leads out of the plugin folders", "path_not_allowed")
        found = discover([candidate])
        for path in found:
            if not (path.name == EVALS_FILE or path.name.endswith(EVALS_SUFFIX)):
                raise ApiError(400, f"path {requested!r}: not an eval file (evals.yaml or NAME.evals.yaml)")
            if not path.resolve().is_relative_to(root):
                raise ApiError(403, f"{path.relative_to(root)} leads out of the plugin folders", "path_not_allowed")
        if not found:
            raise ApiError(404, f"no eval files in {requested!r}: add evals.yaml or NAME.evals.yaml", "not_found")
        return found
    raise ApiError(404, f"no eval file or folder {requested!r} in the server's plugin folders", "not_found")
