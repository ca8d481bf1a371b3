"""Any other GGUF file (``--model path/to/file.gguf``): the defaults the app has always used for one.

Nothing was measured on such a file, so its numbers are the safe ones: the planner offers 12 functions
(as the default tier did before it was measured at 8), tools are sampled cold, and structured answers
keep out of CJK as for the tiers. See docs/models.md, "Any other GGUF file".
"""

from __future__ import annotations

from kernel_app.providers.llama.profiles.base import ModelProfile

GENERIC = ModelProfile(
    family="generic",
    title="any other GGUF file",
    trained_context_tokens=None,
    tool_call_format="generic",
    planner_max_functions=12,
)
