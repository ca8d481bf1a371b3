"""Real plugin folders from public Semantic Kernel repositories, run as their authors wrote them.

The corpus is shared test data beside the project (``../shared/plugins-real``, see its SOURCES.md); it is
not shipped, so this module skips with a reason where it is absent (a user's checkout). For every
function: ``plugins lint`` reports no error but the four kinds that cannot load anywhere but .NET or a
trusted folder; ``plugins list --json`` reports the parameters the files declare; and a run against the
loopback OpenAI-compatible server sends the settings the file configures and the prompt the author
intended — every variable rendered, defaults included, nothing left as ``{{...}}``.

The ``.prompty`` files and Agent Skills (``prompty/``, ``skills/``) are checked the same way: each loads (or
is refused with the one line PROMPTY_REFUSED expects), lists the inputs it declares, and renders with its
sample inputs into the messages its role lines make; a few run through ``kernel-app run``.

Expectations are read from the files here, independently of the loader under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import ROOT, run_cli
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

CORPUS = ROOT.parent / "shared" / "plugins-real"
pytestmark = [
    pytest.mark.skipif(
        not (CORPUS / "SOURCES.md").exists(), reason="the shared real-plugin corpus (../shared/plugins-real) is absent"
    ),
    pytest.mark.e2e,  # kernel-app in subprocesses over a corpus of real folders
]

# The only errors lint may report on the corpus: each cannot load in Python Semantic Kernel either.
ALLOWED_ERRORS = (
    re.compile(r"Python file in an untrusted directory"),
    re.compile(r"no skprompt\.txt"),
    re.compile(r"template_format 'liquid'"),
    re.compile(r"holds only \.NET code"),
    # Prompty files that are not chat prompts (PROMPTY_REFUSED says which, and why).
    re.compile(r"\.prompty:\d+: model\.apiType '(embedding|image)' is not a chat prompt"),
)


def corpus_directories() -> list[Path]:
    """The corpus directories SOURCES.md names (each one is what a user passes to --plugins-dir)."""
    if not (CORPUS / "SOURCES.md").exists():
        return []
    names = re.findall(r"^## `([^`]+)/`", (CORPUS / "SOURCES.md").read_text(encoding="utf-8"), re.MULTILINE)
    return [CORPUS / name for name in names if (CORPUS / name).is_dir()]


def all_functions() -> list[tuple[Path, str]]:
    return [(d, name) for d in corpus_directories() for name in declared_functions(d)]


@pytest.mark.parametrize("directory", corpus_directories(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_lint_reports_only_what_cannot_load(directory: Path) -> None:
    result = run_cli("plugins", "lint", str(directory))
    errors = [line for line in result.stdout.splitlines() if ": warning: " not in line]
    unexpected = [line for line in errors if not any(p.search(line) for p in ALLOWED_ERRORS)]
    assert not unexpected, "\n".join(unexpected)
    assert result.returncode == (1 if errors else 0), result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("directory", corpus_directories(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_list_reports_declared_parameters(directory: Path) -> None:
    result = run_cli("--plugins-dir", str(directory), "plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = {f"{f['plugin']}.{f['function']}": f for f in json.loads(result.stdout)}
    for name, spec in declared_functions(directory).items():
        assert name in listed, f"{name} did not load: {result.stderr}"
        assert listed[name]["source"].startswith(str(directory)), listed[name]["source"]
        parameters = {p["name"].lower(): p for p in listed[name]["parameters"]}
        for variable in declared_variables(spec["config"]):
            got = parameters.get(variable["name"].lower())
            assert got is not None, f"{name}: parameter {variable['name']} lost"
            assert got["description"] == variable["description"], name
            assert got["default"] == (variable["default"] or None), name
            assert got["required"] == variable["required"], f"{name}.{variable['name']}"


@pytest.fixture(scope="module")
def stub_server():
    from tests.support.openai_stub import OpenAIStubServer

    server = OpenAIStubServer().start()
    server.default_answer = "stub answer"
    yield server
    server.stop()


def _kernel_for(directory: Path, stub_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from kernel_app.base.config import load_settings
    from kernel_app.kernel.builder import build_kernel

    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = load_settings(service="openai", plugins_dirs=[directory], memory_dir=tmp_path / "memory")
    return build_kernel(settings)


def _value_for(name: str, spec: dict[str, Any]) -> Any:
    template = spec["template"]
    if re.search(rf"(#each\s+{name}\b|for\s+\w+\s+in\s+{name}\b)", template) or name.lower() == "chat_history":
        return [{"role": "user", "content": f"VALUE-{name}-1"}, {"role": "assistant", "content": f"VALUE-{name}-2"}]
    return f"VALUE-{name}"


@pytest.mark.parametrize(("directory", "name"), all_functions(), ids=lambda x: x if isinstance(x, str) else "")
async def test_run_sends_settings_and_intended_prompt(
    directory: Path, name: str, stub_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kernel_app.kernel.plugin_folders.structured_vars import to_kernel_value
    from kernel_app.kernel.runner import resolve_function, run_chain

    spec = declared_functions(directory)[name]
    built = _kernel_for(directory, stub_server, monkeypatch, tmp_path)
    function = resolve_function(built.kernel, name, built.report)
    declared = {v["name"].lower(): v for v in declared_variables(spec["config"])}
    used = template_variables(spec)
    variables: dict[str, Any] = {}
    for variable in used | {v["name"] for v in declared.values()}:
        known = declared.get(variable.lower())
        if known is not None and known["default"] and variable.lower() != "input":
            continue  # left to its default, which must then be rendered
        if variable.lower() not in {v.lower() for v in variables}:
            variables[variable] = to_kernel_value(_value_for(variable, spec))
    given = {k.lower(): k for k in variables}
    before = len(stub_server.requests)
    await run_chain(built.kernel, [function], variables=variables)
    requests = stub_server.requests[before:]
    assert requests, f"{name}: nothing was sent"
    body = requests[-1].body  # the function's own request comes last (nested calls run first)
    for key, value in declared_settings(spec["config"]).items():
        assert body.get(key) == value, f"{name}: setting {key} sent as {body.get(key)!r}, configured {value!r}"
    # A variable may feed a nested call ({{ConversationSummaryPlugin.SummarizeConversation $history}}).
    prompts = "\n".join(r.prompt for r in requests)
    for variable in used:
        known = declared.get(variable.lower())
        if known is not None and known["default"] and variable.lower() != "input":
            assert known["default"] in prompts, f"{name}: default of {variable} not rendered"
        else:
            expected = f"VALUE-{given.get(variable.lower(), variable)}"
            assert expected in prompts, f"{name}: {variable} not rendered in {prompts[:300]!r}"
    assert not re.search(r"{{\s*\$", prompts), f"{name}: unrendered variable in {prompts[:300]!r}"


# region calls to other functions (Semantic Kernel's core plugin names)

# The corpus's functions whose templates call a function, and the calls as written: each resolves to a
# function of ours (plugins/README.md lists the mappings), so lint finds it and the function runs
# (test_run_sends_settings_and_intended_prompt runs every function of the corpus).
CALLING_FUNCTIONS = {
    "sk-samples:ChatPlugin.ChatGPT": {"date", "recall"},  # TimePlugin.date, TextMemoryPlugin.recall
    "sk-samples:CodingPlugin.EmailSearch": {"day", "month", "year"},  # TimePlugin
    "sk-samples:QAPlugin.ContextQuery": {"time.Date", "recall"},
    "sk-samples:QAPlugin.GitHubMemoryQuery": {"textmemoryskill.recall"},  # TextMemorySkill: the old name
    "sk-python-yaml:prompts.chat": {"ConversationSummaryPlugin.SummarizeConversation"},
}
_SK_CALL = re.compile(r"{{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)(?=\s|}})")
# A dashed helper; a dotted name with an argument after it; a subexpression's helper.
_HB_CALL = re.compile(
    r"{{~?\s*([A-Za-z_]\w*-[A-Za-z_]\w*)|{{~?\s*([A-Za-z_]\w*\.[A-Za-z_]\w*)\s+[^\s}~]|\(\s*([A-Za-z_]\w*[-.]\w+)"
)
_J2_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")


def template_calls(spec: dict[str, Any]) -> set[str]:
    """The functions a template calls, by simple patterns per format (not the loader's parser)."""
    template, kind = spec["template"], spec["format"]
    if kind == "semantic-kernel":
        return set(_SK_CALL.findall(template))
    if kind == "handlebars":
        return {name for names in _HB_CALL.findall(template) for name in names if name}
    return set(_J2_CALL.findall(template)) - {"range", "message", "message_to_prompt"}


def test_the_corpus_calls_only_functions_that_resolve() -> None:
    found = {
        f"{directory.relative_to(CORPUS)}:{name}": calls
        for directory in corpus_directories()
        for name, spec in declared_functions(directory).items()
        if (calls := template_calls(spec))
    }
    for name, calls in CALLING_FUNCTIONS.items():
        assert found.get(name) == calls, name
    for directory in {CORPUS / name.split(":")[0] for name in found}:
        result = run_cli("plugins", "lint", str(directory))
        unresolved = [line for line in result.stdout.splitlines() if "which no loaded plugin has" in line]
        assert not unresolved, "\n".join(unresolved)


# endregion
# region .prompty files and Agent Skills

PROMPTY = CORPUS / "prompty"
SKILLS = CORPUS / "skills"
# The .prompty files that cannot load, and why: neither is a chat prompt, so there is nothing to run as one.
PROMPTY_REFUSED = {
    # an embeddings request (apiType: embedding): its body is the text to embed, not a conversation
    "PromptySpecFixtures/embedding.prompty": "6: model.apiType 'embedding' is not a chat prompt",
    # an image generation request (apiType: image, DALL-E options)
    "PromptySpecFixtures/image.prompty": "6: model.apiType 'image' is not a chat prompt",
}


def prompty_files() -> list[Path]:
    return sorted(PROMPTY.rglob("*.prompty")) if PROMPTY.is_dir() else []


def skill_folders() -> list[Path]:
    return sorted(p.parent for p in SKILLS.rglob("SKILL.md")) if SKILLS.is_dir() else []


def _relative(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def loadable_prompty() -> list[Path]:
    return [p for p in prompty_files() if _relative(p, PROMPTY) not in PROMPTY_REFUSED]


def test_prompty_and_skills_load_or_are_refused_with_the_expected_line() -> None:
    result = run_cli("plugins", "lint", str(PROMPTY), str(SKILLS))
    errors = [line for line in result.stdout.splitlines() if ": warning: " not in line]
    refused = {line.split(":")[0].removeprefix(str(PROMPTY) + "/"): line.split(":", 1)[1] for line in errors}
    assert set(refused) == set(PROMPTY_REFUSED), "\n".join(errors)
    for name, expected in PROMPTY_REFUSED.items():
        assert refused[name].startswith(expected), refused[name]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # Every finding is one line naming a file of the corpus.
    assert all(line.startswith((str(PROMPTY), str(SKILLS))) for line in result.stdout.splitlines())


@pytest.mark.parametrize("directory", [PROMPTY, SKILLS], ids=["prompty", "skills"])
def test_list_shows_every_prompty_file_and_skill_with_its_inputs(directory: Path) -> None:
    result = run_cli("--plugins-dir", str(directory), "plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = {f"{f['plugin']}.{f['function']}": f for f in json.loads(result.stdout)}
    if directory == PROMPTY:
        for path in loadable_prompty():
            name = f"{path.parent.name}.{identifier(path.stem)}"
            assert name in listed, f"{name} is not listed"
            parameters = {p["name"]: p for p in listed[name]["parameters"]}
            for input_name, spec in prompty_inputs(path).items():
                assert input_name in parameters, f"{name}: input {input_name} lost"
                if isinstance(spec.get("default"), str) and spec["default"]:
                    assert parameters[input_name]["default"] == spec["default"], f"{name}.{input_name}"
            for sample_name in prompty_samples(path):
                assert sample_name in parameters, f"{name}: sample {sample_name} is not a parameter"
        return
    for folder in skill_folders():
        name = f"{folder.parent.name}.{identifier(folder.name)}"
        assert [p["name"] for p in listed[name]["parameters"]] == ["input"], name
        description = yaml.safe_load((folder / "SKILL.md").read_text(encoding="utf-8").split("---")[1])["description"]
        assert listed[name]["description"] == " ".join(description.split())
        has_files = any(p.is_file() and p.name != "SKILL.md" for p in folder.rglob("*"))
        assert (f"{name}_read_file" in listed) == has_files, name
        assert f"{name}_run_script" not in listed  # the corpus is not trusted


@pytest.mark.parametrize("path", loadable_prompty(), ids=lambda p: _relative(p, PROMPTY))
async def test_prompty_renders_its_samples_into_its_messages(
    path: Path, stub_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kernel_app.kernel.plugin_folders.structured_vars import to_kernel_value
    from kernel_app.kernel.runner import resolve_function, run_chain

    front, body = prompty_parts(path)
    built = _kernel_for(PROMPTY, stub_server, monkeypatch, tmp_path)
    function = resolve_function(built.kernel, f"{path.parent.name}.{identifier(path.stem)}", built.report)
    values = sample_values(path, body)
    before = len(stub_server.requests)
    await run_chain(built.kernel, [function], variables={k: to_kernel_value(v) for k, v in values.items()})
    request = stub_server.requests[before:][-1]
    messages = request.body["messages"]
    assert [m["role"] for m in messages] == prompty_roles(body)
    prompt = request.prompt
    assert not re.search(r"{{|{%|</?message", prompt), prompt[:300]
    for name, value in values.items():
        if isinstance(value, str) and re.search(rf"{{{{\s*{name}\s*}}}}", body):
            assert value.strip() in prompt, f"{name} not rendered"
        for field_name in re.findall(rf"{{{{\s*{name}\.(\w+)\s*}}}}", body):
            if isinstance(value, dict) and isinstance(value.get(field_name), str):
                assert value[field_name] in prompt, f"{name}.{field_name} not rendered"
    model = front.get("model") if isinstance(front.get("model"), dict) else {}
    configured = {**(model.get("parameters") or {}), **(model.get("options") or {})}
    names = {"maxOutputTokens": "max_tokens"}
    for key, value in configured.items():
        if names.get(key, key) in ("max_tokens", "temperature"):
            assert request.body.get(names.get(key, key)) == value, f"{key} not sent"
    if front.get("outputs"):
        assert request.body["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("folder", skill_folders(), ids=lambda p: _relative(p, SKILLS))
async def test_a_skill_sends_its_instructions_and_reads_its_own_files(
    folder: Path, stub_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kernel_app.base.errors import UsageError
    from kernel_app.kernel.plugin_folders.skills import RESOURCE_LIMIT, read_file
    from kernel_app.kernel.runner import resolve_function, run_chain

    built = _kernel_for(SKILLS, stub_server, monkeypatch, tmp_path)
    function = resolve_function(built.kernel, f"{folder.parent.name}.{identifier(folder.name)}", built.report)
    before = len(stub_server.requests)
    await run_chain(built.kernel, [function], input="Please help with VALUE-input")
    messages = stub_server.requests[before:][-1].body["messages"]
    instructions = (folder / "SKILL.md").read_text(encoding="utf-8").split("---", 2)[2].strip()
    assert messages[0]["role"] == "system" and messages[0]["content"].startswith(instructions)
    assert messages[-1] == {"role": "user", "content": "Please help with VALUE-input"}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SKILL.md"):
        relative = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        if b"\0" in data or len(data) > RESOURCE_LIMIT:
            with pytest.raises(UsageError):
                read_file(folder, relative)
        else:
            assert read_file(folder, relative) == data.decode("utf-8")


def _openai_env(stub_server) -> dict[str, str]:
    return {"KERNEL_APP_SERVICE": "openai", "OPENAI_BASE_URL": stub_server.base_url, "OPENAI_API_KEY": "sk-test"}


def test_kernel_app_run_runs_prompty_files_and_a_skill(stub_server, tmp_path: Path) -> None:
    env = _openai_env(stub_server) | {"KERNEL_APP_MEMORY_DIR": str(tmp_path / "memory")}
    apology = PROMPTY / "PromptflowEvalApology"
    cases = [
        # Only a system section (its "user: ..." lines are inline text): semantic-kernel sends it as the user's.
        (PROMPTY, ["PromptflowEvalApology.apology", "--vars", str(apology / "sample.json")], ["user"]),
        (PROMPTY, ["PromptySpecFixtures.basic", "--var", "question=VALUE-q"], ["system", "user"]),
        (SKILLS, ["AgentFrameworkSkills.unit_converter", "--input", "26.2 miles in km?"], ["system", "user"]),
    ]
    for directory, arguments, roles in cases:
        before = len(stub_server.requests)
        result = run_cli("--plugins-dir", str(directory), "run", *arguments, **env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "stub answer"
        body = stub_server.requests[before:][-1].body
        assert [m["role"] for m in body["messages"]] == roles
    apology_body = stub_server.requests[-3].body
    assert "I'm sorry, I don't know that." in apology_body["messages"][0]["content"]
    assert apology_body["response_format"]["json_schema"]["schema"]["required"] == ["apology"]
    assert stub_server.requests[-2].body["temperature"] == 0.7
    refused = run_cli("--plugins-dir", str(PROMPTY), "run", "PromptySpecFixtures.embedding", **env)
    assert refused.returncode == 2
    last = refused.stderr.splitlines()[-1]
    assert last.startswith("error: PromptySpecFixtures.embedding did not load: ")
    assert "embedding.prompty:6: model.apiType 'embedding' is not a chat prompt" in last


# endregion
