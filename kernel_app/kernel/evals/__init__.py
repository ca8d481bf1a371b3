"""``kernel-app eval``'s engine: eval files beside a function, assertions by type name, a runner.

The runner keeps "get the output" (:func:`runner.produce`) apart from "check it" (:func:`runner.check`),
so later checks (judges, similarity, a cache of outputs) plug in without touching how a function is run.
Assertion types register themselves when their module is imported: the deterministic ones
(``assertions``), those against a reference text (``references``: similar, bleu, rouge-l), the judge's
(``judge``: llm-rubric) and the planner's (``planning``: plan-functions).
"""

from kernel_app.kernel.evals import judge, planning, references
from kernel_app.kernel.evals.assertions import ASSERTIONS, AssertionResult, Output, register
from kernel_app.kernel.evals.spec import AssertionSpec, EvalCase, EvalFile, EvalFileError, discover, load_eval_file

__all__ = [
    "ASSERTIONS",
    "AssertionResult",
    "AssertionSpec",
    "EvalCase",
    "EvalFile",
    "EvalFileError",
    "Output",
    "discover",
    "judge",
    "load_eval_file",
    "planning",
    "references",
    "register",
]
