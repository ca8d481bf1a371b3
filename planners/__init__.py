"""Planners: from a natural-language goal to a validated plan of plugin calls, and running it.

Importing this package does not import semantic-kernel; the planners import it when they run.
See docs/planner.md.
"""

from planners.action import ActionPlanner
from planners.approval import NOT_APPROVED, ApproveCall, CallRequest
from planners.call_filter import Call
from planners.catalogue import FunctionCatalogue, FunctionInfo, ParameterInfo
from planners.errors import (
    Attempt,
    BareReferenceError,
    CatalogueFilterError,
    DuplicateOutputError,
    EmptyPlanError,
    ExcludedFunctionError,
    InvalidArgumentValueError,
    InvalidOutputNameError,
    MissingArgumentError,
    NoFunctionFits,
    PlanError,
    PlanExecutionError,
    PlanFormatError,
    PlannerServiceError,
    PlanningError,
    PlanParseError,
    PlanRejectedError,
    PlanValidationError,
    RoundLimitError,
    StepTimeoutError,
    TooManyStepsError,
    UndefinedReferenceError,
    UnknownArgumentError,
    UnknownFunctionError,
)
from planners.executor import PlanExecutor, PlanResult, StepResult
from planners.factory import (
    DEFAULT_PLANNER,
    PLANNER_KINDS,
    UnknownPlannerError,
    create_planner,
    planner_kind,
    proposes_plan,
)
from planners.function_calling import FunctionCallingPlanner, FunctionCallingResult
from planners.parsing import parse_plan_answer
from planners.plan import Plan, PlanStep
from planners.sequential import SequentialPlanner
from planners.validation import validate_plan

__all__ = [
    "DEFAULT_PLANNER",
    "NOT_APPROVED",
    "PLANNER_KINDS",
    "ActionPlanner",
    "ApproveCall",
    "Attempt",
    "BareReferenceError",
    "Call",
    "CallRequest",
    "CatalogueFilterError",
    "DuplicateOutputError",
    "EmptyPlanError",
    "ExcludedFunctionError",
    "FunctionCallingPlanner",
    "FunctionCallingResult",
    "FunctionCatalogue",
    "FunctionInfo",
    "InvalidArgumentValueError",
    "InvalidOutputNameError",
    "MissingArgumentError",
    "NoFunctionFits",
    "ParameterInfo",
    "Plan",
    "PlanError",
    "PlanExecutionError",
    "PlanExecutor",
    "PlanFormatError",
    "PlanParseError",
    "PlanRejectedError",
    "PlanResult",
    "PlanStep",
    "PlanValidationError",
    "PlannerServiceError",
    "PlanningError",
    "RoundLimitError",
    "SequentialPlanner",
    "StepResult",
    "StepTimeoutError",
    "TooManyStepsError",
    "UndefinedReferenceError",
    "UnknownArgumentError",
    "UnknownFunctionError",
    "UnknownPlannerError",
    "create_planner",
    "parse_plan_answer",
    "planner_kind",
    "proposes_plan",
    "validate_plan",
]
