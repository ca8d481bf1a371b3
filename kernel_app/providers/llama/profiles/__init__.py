"""One profile per family of embedded models: what is known about it, in one place (as pydantic-ai's
``profiles/``). The measurements behind each value are in docs/models.md, one section per family."""

from __future__ import annotations

from kernel_app.providers.llama.profiles.base import ModelProfile
from kernel_app.providers.llama.profiles.generic import GENERIC
from kernel_app.providers.llama.profiles.qwen import QWEN2_5_CODER
from kernel_app.providers.llama.profiles.smollm import SMOLLM2

PROFILES: dict[str, ModelProfile] = {profile.family: profile for profile in (QWEN2_5_CODER, SMOLLM2, GENERIC)}

__all__ = ["GENERIC", "PROFILES", "QWEN2_5_CODER", "SMOLLM2", "ModelProfile"]
