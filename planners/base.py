"""The ask → parse → validate → repair loop shared by the sequential and the action planner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kernel_app.base.errors import KernelAppError, innermost_message
from kernel_app.base.usage import Usage
from planners.catalogue import FunctionCatalogue
from planners.errors import (
    Attempt,
    NoFunctionFits,
    PlanError,
    PlannerServiceError,
    PlanningError,
    PlanParseError,
)
from planners.parsing import parse_plan_answer
from planners.plan import Plan
from planners.prompts import echoed_answer, repair_prompt, system_prompt, user_prompt
from planners.quoting import clean_text, shortened
from planners.relevance import Relevance, most_relevant
from planners.schema import planner_settings, response_schema, supports_response_format
from planners.validation import DEFAULT_MAX_STEPS, bare_references, validate_plan

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.contents import ChatHistory

DEFAULT_MAX_REPAIRS = 3
DEFAULT_MAX_FUNCTIONS = 30


class JsonPlanner:
    """Asks the model for a plan in the plan's JSON form; repairs up to ``max_repairs`` times.

    ``create_plan`` returns a plan that passed :func:`validate_plan`, or raises a :class:`PlanningError`
    (``NoFunctionFits`` when the model says nothing fits; ``PlannerServiceError`` when the service fails)
    whose ``attempts`` hold every raw answer and its error. After a call, ``last_attempts`` and
    ``last_usage`` describe it (also on success: one attempt means no repair was needed).
    """

    single_step: ClassVar[bool] = False
    default_options: ClassVar[Mapping[str, Any]] = {"max_tokens": 1000, "temperature": 0.0}

    def __init__(
        self,
        kernel: Kernel,
        *,
        max_repairs: int = DEFAULT_MAX_REPAIRS,
        max_steps: int = DEFAULT_MAX_STEPS,
        included: Iterable[str] | None = None,
        excluded: Iterable[str] | None = None,
        catalogue: FunctionCatalogue | None = None,
        inputs: Sequence[str] = (),
        max_functions: int | None = None,
        relevance: Relevance | None = None,
        service_id: str | None = None,
        structured_output: bool = True,
        options: Mapping[str, Any] | None = None,
        repair_options: Mapping[str, Any] | None = None,
    ) -> None:
        if max_repairs < 0:
            raise ValueError("max_repairs must be 0 or more")
        self.kernel = kernel
        self.max_repairs = max_repairs
        self.max_steps = 1 if self.single_step else max_steps
        # Built now, so that a bad --exclude name fails before any model call.
        self.catalogue = FunctionCatalogue.given_or_from_kernel(catalogue, kernel, included=included, excluded=excluded)
        self.inputs = list(inputs)
        self.max_functions = max_functions
        self.relevance = relevance
        self.service_id = service_id
        self.structured_output = structured_output
        self.options = {**self.default_options, **(options or {})}
        # A repair turn samples a little: at temperature 0 a small model tends to repeat its bad answer.
        self.repair_options = {**self.options, "temperature": 0.5, **(repair_options or {})}
        self.last_attempts: list[Attempt] = []
        self.last_usage = Usage()
        self.last_offered: list[str] = []

    def service(self) -> ChatCompletionClientBase:
        from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

        try:
            return self.kernel.get_service(self.service_id, type=ChatCompletionClientBase)
        except Exception as error:  # KernelServiceNotFoundError and friends
            raise PlannerServiceError(f"planning needs a chat service: {error}") from None

    def function_limit(self, service: ChatCompletionClientBase) -> int:
        """How many functions to offer: ``max_functions`` if given, else the service's own hint.

        A service may declare ``planner_max_functions`` (the embedded tiers do, from their model profile:
        a small model plans far better from a few functions than from the whole catalogue); otherwise 30.
        """
        if self.max_functions is not None:
            return self.max_functions
        return int(getattr(service, "planner_max_functions", None) or DEFAULT_MAX_FUNCTIONS)

    @property
    def uses_structured_output(self) -> bool:
        """True when the service will constrain its answer to the plan schema (OpenAI, Azure, local)."""
        return self.structured_output and supports_response_format(self.service())

    async def create_plan(self, goal: str) -> Plan:
        goal = clean_text(goal.strip())  # a lone surrogate (from a terminal's bad bytes) could not be printed
        if not goal:
            raise PlanningError("the goal is empty: say what you want done")
        if not len(self.catalogue):
            raise PlanningError("no functions are left to plan with: check --exclude")
        service = self.service()
        names = await most_relevant(goal, self.catalogue, self.function_limit(service), self.relevance, unrelated=False)
        self.last_offered = names
        schema = (
            response_schema(self.catalogue, names, max_steps=self.max_steps, single_step=self.single_step)
            if self.structured_output
            else None
        )
        settings = planner_settings(service, schema=schema, options=self.options)
        repair_settings = planner_settings(service, schema=schema, options=self.repair_options)
        system = system_prompt(
            self.catalogue, names, inputs=self.inputs, max_steps=self.max_steps, single_step=self.single_step
        )
        attempts: list[Attempt] = []
        self.last_attempts, self.last_usage = attempts, Usage()
        for _ in range(self.max_repairs + 1):
            history = self._history(system, goal, attempts[-1] if attempts else None)
            answer = await self._ask(service, history, repair_settings if attempts else settings, attempts)
            try:
                plan = self._accept(answer, goal)
            except NoFunctionFits as refusal:
                attempts.append(Attempt(answer, refusal))
                refusal.attempts = list(attempts)
                raise
            except PlanError as error:
                attempts.append(Attempt(answer, error))
                continue
            attempts.append(Attempt(answer, None))
            return plan
        last = attempts[-1].error
        raise PlanningError(
            f"no valid plan after {len(attempts)} answer(s) ({self.max_repairs} repair(s)): {last}", attempts
        )

    def _accept(self, answer: str, goal: str) -> Plan:
        try:
            parsed = parse_plan_answer(answer, goal=goal, catalogue=self.catalogue)
            if not parsed.plan.steps and parsed.reason:
                raise NoFunctionFits(parsed.reason)
            validate_plan(parsed.plan, self.catalogue, inputs=self.inputs, max_steps=self.max_steps)
            forgotten = bare_references(parsed.plan)
            if forgotten:  # a plan that would run on the word "poem": never a success, a repair
                forgotten[0].problems = forgotten
                raise forgotten[0]
            return parsed.plan
        except PlanError:
            raise
        except Exception as error:  # a parser bug must still end in a typed error, never a crash
            detail = shortened(" ".join(str(error).split()), 120)
            raise PlanParseError(f"the answer could not be read ({type(error).__name__}: {detail})") from error

    @staticmethod
    def _history(system: str, goal: str, previous: Attempt | None) -> ChatHistory:
        """System + goal; in a repair turn also the previous answer and what was wrong with it.

        Only the LAST answer is replayed, not all of them: the prompt stays bounded on small contexts.
        """
        from semantic_kernel.contents import ChatHistory

        history = ChatHistory()
        history.add_system_message(system)
        history.add_user_message(user_prompt(goal))
        if previous is not None:
            history.add_assistant_message(echoed_answer(previous.answer) or "(empty answer)")
            error = previous.error
            problems = getattr(error, "problems", None) or [error]
            history.add_user_message(repair_prompt([getattr(p, "message", None) or str(p) for p in problems]))
        return history

    async def _ask(
        self, service: ChatCompletionClientBase, history: ChatHistory, settings: Any, attempts: list[Attempt]
    ) -> str:
        try:
            message = await service.get_chat_message_content(history, settings)
        except KernelAppError as error:
            raise PlannerServiceError(f"planning failed: {error}", attempts) from error
        except Exception as error:
            raise PlannerServiceError(
                f"planning failed: the chat service failed: {innermost_message(error)}", attempts
            ) from (error)
        if message is None:
            return ""
        self.last_usage = self.last_usage + Usage.from_metadata(getattr(message, "metadata", None))
        return message.content or ""
