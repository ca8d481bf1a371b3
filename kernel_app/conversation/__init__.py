"""The conversation engine and its store: the core every surface (REPL, HTTP, OpenAI-compatible) drives."""

from kernel_app.conversation.engine import ConversationEngine, TurnResult, collect, result_text
from kernel_app.conversation.events import (
    ApprovalNeeded,
    ContentBlocked,
    Done,
    ErrorEvent,
    Event,
    FunctionCallFinished,
    FunctionCallStarted,
    PlanProposed,
    PlanStepFinished,
    PlanStepStarted,
    Progress,
    TextDelta,
)
from kernel_app.conversation.store import (
    AnyConversationStore,
    Conversation,
    ConversationNotFoundError,
    ConversationStore,
    Message,
    ToolCall,
    default_store_path,
    open_conversation_store,
)

__all__ = [
    "AnyConversationStore",
    "ApprovalNeeded",
    "ContentBlocked",
    "Conversation",
    "ConversationEngine",
    "ConversationNotFoundError",
    "ConversationStore",
    "Done",
    "ErrorEvent",
    "Event",
    "FunctionCallFinished",
    "FunctionCallStarted",
    "Message",
    "PlanProposed",
    "PlanStepFinished",
    "PlanStepStarted",
    "Progress",
    "TextDelta",
    "ToolCall",
    "TurnResult",
    "collect",
    "default_store_path",
    "open_conversation_store",
    "result_text",
]
