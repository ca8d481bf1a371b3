"""What the server's routers share: the kernel (built once at start), the engines, the store, the limits."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from kernel_app.conversation.engine import ConversationEngine
from kernel_app.conversation.events import ApprovalNeeded
from kernel_app.conversation.store import AnyConversationStore
from kernel_app.interfaces.server.limits import GenerationGate

if TYPE_CHECKING:
    from semantic_kernel import Kernel

    from kernel_app.base.config import Settings

KERNEL_MODEL = "kernel-app"  # the OpenAI-compatible model id that is the kernel itself
APPROVAL_TIMEOUT = 300.0  # seconds an approval waits for its answer before it counts as "no"


@dataclass
class ServerState:
    settings: Settings
    kernel: Kernel
    engine: ConversationEngine  # the kernel: function calling over the plugins
    plain: ConversationEngine  # the underlying model, no tools, no system message of ours
    store: AnyConversationStore  # local SQLite, or PostgreSQL with database_url
    gate: GenerationGate
    request_timeout: float | None = 300.0
    approve_model_functions: bool = False  # prompt (MODEL) functions run unasked (OpenAI API, Teams, chat-copilot)
    embedder: Any = None
    plans: Any = None  # the REST plans' store, opened on first use (api/plans.py)
    approvals: dict[str, asyncio.Future[bool]] = field(default_factory=dict)
    approval_owner: dict[str, str] = field(default_factory=dict)  # approval id -> conversation id
    shared_approvals: Any = None  # with database_url: approvals any server can answer (api/approvals.py)
    decision_wakes: Any = None  # with database_url: other servers' decisions wake turns here (pg_decisions.py)
    ready: bool = False
    model_loading: asyncio.Future[Any] | None = None  # the embedded model, loading since start-up
    memory_store: Any = None
    uploads: Any = None  # with database_url: REST-uploaded documents' bytes, opened on first use (api/memory.py)
    started: float = field(default_factory=time.time)
    instance: str = ""  # host:pid of this server process (X-Kernel-App-Instance)

    @property
    def model_name(self) -> str:
        return self.engine.model

    def memory(self) -> Any:
        """The memory store the REST API uses (opened on first use, with the server's embedder)."""
        if self.memory_store is None:
            from memories.backend import open_store

            self.memory_store = open_store(
                self.settings.memory_dir, database_url=self.settings.database_url, embedder=self.get_embedder()
            )
        return self.memory_store

    def get_embedder(self) -> Any:
        if self.embedder is None:
            from memories.embedders import default_embedder

            self.embedder = default_embedder()
        return self.embedder

    async def wait_for_approval(self, conversation_id: str, request: ApprovalNeeded) -> bool:
        """The REST surface's approval: wait until ``POST .../approvals/{id}`` answers (or time runs out: no)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.approvals[request.approval_id] = future
        self.approval_owner[request.approval_id] = conversation_id
        try:
            return await asyncio.wait_for(asyncio.shield(future), APPROVAL_TIMEOUT)
        except asyncio.TimeoutError:
            return False
        finally:
            self.approvals.pop(request.approval_id, None)
            self.approval_owner.pop(request.approval_id, None)

    def answer_approval(self, conversation_id: str, approval_id: str, approved: bool) -> bool:
        future = self.approvals.get(approval_id)
        if future is None or self.approval_owner.get(approval_id) != conversation_id or future.done():
            return False
        future.set_result(approved)
        return True


async def get_state(request: Request) -> ServerState:
    """Async on purpose: FastAPI runs a sync dependency in a worker thread (a thread hop per request)."""
    return request.app.state.kernel_app


State = Annotated[ServerState, Depends(get_state)]  # a route's ``state: State`` parameter
