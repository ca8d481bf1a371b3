"""Plugin folders behave as their authors wrote them (one test per defect class of the real-folder issue).

Unit tests on folders made here, run on the scripted chat service; the corpus of real folders has its own
module (test_plugins_real_corpus.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.errors import KernelAppError, MissingVariableError, UsageError
from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories
from kernel_app.providers.scripted import ScriptedChatCompletion
from tests.support.cli import run_cli


def write(root: Path, relative: str, text: str, encoding: str = "utf-8") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def function_folder(root: Path, plugin: str, name: str, prompt: str, config: dict[str, Any] | None = None) -> None:
    write(root, f"{plugin}/{name}/skprompt.txt", prompt)
    if config is not None:
        write(root, f"{plugin}/{name}/config.json", json.dumps(config, indent=2))


def lint(root: Path) -> list[str]:
    from kernel_app.base.paths import builtin_plugins_dir
    from kernel_app.kernel.builder import OTHER_FUNCTIONS

    report = load_plugin_directories(
        [PluginDirectory(root), PluginDirectory(builtin_plugins_dir(), trusted=True, builtin=True)],
        other_functions=OTHER_FUNCTIONS,
    )
    return [str(p) for p in report.problems if p.path.startswith(str(root))]


def kernel_with(root: Path, tmp_path: Path, *answers: str, service: ScriptedChatCompletion | None = None):
    from kernel_app.base.config import load_settings
    from kernel_app.kernel.builder import build_kernel

    service = service or ScriptedChatCompletion(list(answers), default="ok")
    settings = load_settings(plugins_dirs=[root], memory_dir=tmp_path / "memory")
    return build_kernel(settings, chat_service=service), service


async def invoke(built: Any, name: str, **variables: Any) -> str:
    from kernel_app.kernel.runner import resolve_function, run_chain

    function = resolve_function(built.kernel, name, built.report)
    return (await run_chain(built.kernel, [function], variables=variables)).result


CURRENT_WITH_SCHEMA_1 = {
    "schema": 1,
    "description": "Greet someone.",
    "template_format": "handlebars",
    "execution_settings": {"default": {"max_tokens": 42, "temperature": 0.3, "stop_sequences": ["[done]"]}},
    "input_variables": [
        {"name": "person", "description": "Who to greet", "is_required": True},
        {"name": "tone", "description": "How", "default": "warm"},
    ],
}


# 1. "schema": 1 is not evidence of the old schema


async def test_schema_1_with_current_keys_keeps_settings_variables_and_format(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    function_folder(plugins, "Greeter", "Hello", "Say hello to {{person}} in a {{tone}} way.", CURRENT_WITH_SCHEMA_1)
    assert lint(plugins) == []
    built, service = kernel_with(plugins, tmp_path)
    await invoke(built, "Greeter.Hello", person="Ann")
    sent = service.requests[0]
    assert sent.prompt == "Say hello to Ann in a warm way."  # handlebars, not SK syntax
    assert sent.settings["max_tokens"] == 42 and sent.settings["stop"] == ["[done]"]
    parameters = {p.name: p for p in built.kernel.get_function("Greeter", "Hello").metadata.parameters}
    assert parameters["person"].description == "Who to greet"
    assert parameters["tone"].default_value == "warm"


def test_mixed_schema_is_a_warning_naming_both_and_loses_nothing(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {
        "schema": 1,
        "description": "Mixed.",
        "completion": {"max_tokens": 99},
        "input_variables": [{"name": "input", "description": "text", "is_required": True}],
    }
    function_folder(plugins, "Mixed", "Fn", "Echo {{$input}}", config)
    problems = lint(plugins)
    assert len(problems) == 1
    assert "warning: mixes the old schema's 'completion' with the current schema's 'input_variables'" in problems[0]
    report = load_plugin_directories([PluginDirectory(plugins)])
    function = report.plugins["Mixed"][0]
    assert function.prompt_execution_settings["default"].extension_data["max_tokens"] == 99


# 2. variable names resolve case-insensitively; an empty prompt is never sent


async def test_dotnet_style_uppercase_variable_renders_the_declared_one(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {"description": "Continue.", "input_variables": [{"name": "input", "description": "text"}]}
    function_folder(plugins, "Misc", "Continue", "{{$INPUT}}", config)
    assert lint(plugins) == []
    built, service = kernel_with(plugins, tmp_path)
    await invoke(built, "Misc.Continue", input="Once upon a time")
    assert service.requests[0].prompt == "Once upon a time"


@pytest.mark.e2e
def test_a_prompt_that_renders_empty_is_an_error_not_exit_0(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {
        "description": "Continue.",
        "input_variables": [{"name": "input", "description": "t", "is_required": False}],
    }
    function_folder(plugins, "Misc", "Continue", "{{$INPUT}}", config)
    result = run_cli(
        "--plugins-dir",
        str(plugins),
        "run",
        "Misc.Continue",
        KERNEL_APP_SERVICE="openai",
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    )
    assert result.returncode != 0, result.stdout
    assert "Misc.Continue: the prompt rendered empty" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# 3. templates that call functions


def test_lint_names_a_called_function_that_does_not_exist_with_the_closest(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    function_folder(plugins, "Ctx", "Today", "Line one\nTODAY is {{time.Datee}}", {"description": "d."})
    problems = lint(plugins)
    assert len(problems) == 1
    assert problems[0].startswith(f"{plugins}/Ctx/Today/skprompt.txt:2: warning: calls time.Datee, which no loaded")
    assert "Time.date" in problems[0]


async def test_templates_call_core_functions_as_in_semantic_kernel(tmp_path: Path) -> None:
    import datetime

    plugins = tmp_path / "plugins"
    prompt = "TODAY is {{time.Date}}, year {{year}}. {{ConversationSummaryPlugin.SummarizeConversation $history}}"
    config = {"description": "d.", "input_variables": [{"name": "history", "description": "the chat"}]}
    function_folder(plugins, "Ctx", "Today", prompt, config)
    assert lint(plugins) == []
    built, service = kernel_with(plugins, tmp_path, "a summary")
    await invoke(built, "Ctx.Today", history="A: hi\nB: hello")
    assert "A: hi" in service.requests[0].prompt  # the summarizer ran first, on the model
    final = service.requests[1].prompt
    assert str(datetime.date.today().year) in final and "a summary" in final


# 4. settings keyed by a service id nobody registers


async def test_settings_keyed_by_an_unknown_service_are_used_when_unambiguous(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {"description": "d.", "execution_settings": {"chat": {"max_tokens": 17}}}
    function_folder(plugins, "Keyed", "Fn", "Say {{$input}}", config)
    built, service = kernel_with(plugins, tmp_path)
    await invoke(built, "Keyed.Fn", input="x")
    assert service.requests[0].settings["max_tokens"] == 17


async def test_ambiguous_service_keys_are_one_line_naming_them(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {"description": "d.", "execution_settings": {"chat": {"max_tokens": 1}, "gpt4": {"max_tokens": 2}}}
    function_folder(plugins, "Keyed", "Fn", "Say {{$input}}", config)
    built, service = kernel_with(plugins, tmp_path)
    with pytest.raises(KernelAppError) as caught:
        await invoke(built, "Keyed.Fn", input="x")
    message = str(caught.value)
    assert "chat, gpt4" in message and "scripted" in message and "\n" not in message
    assert service.requests == []


# 5. structured variables


CHAT_LOOP = {
    "name": "Reply",
    "description": "Reply in a chat.",
    "template_format": "handlebars",
    "template": '{{#each messages}}<message role="{{Role}}">{{~Content~}}</message>{{/each}}',
    "input_variables": [{"name": "messages", "description": "The chat so far", "is_required": True}],
}


async def test_var_json_chat_history_drives_a_handlebars_loop(tmp_path: Path) -> None:
    from kernel_app.kernel.plugin_folders.structured_vars import parse_json_vars, to_kernel_value

    plugins = tmp_path / "plugins"
    import yaml

    write(plugins, "Chat/reply.yaml", yaml.safe_dump(CHAT_LOOP))
    built, service = kernel_with(plugins, tmp_path)
    given = parse_json_vars(
        ['messages=[{"role": "user", "content": "Hi <b>"}, {"role": "assistant", "content": "Hello"}]']
    )
    await invoke(built, "Chat.Reply", messages=to_kernel_value(given["messages"]))
    assert service.requests[0].messages == [
        {"role": "user", "content": "Hi <b>"},
        {"role": "assistant", "content": "Hello"},
    ]


async def test_a_string_where_the_template_loops_is_a_clear_error(tmp_path: Path) -> None:
    import yaml

    plugins = tmp_path / "plugins"
    write(plugins, "Chat/reply.yaml", yaml.safe_dump(CHAT_LOOP))
    built, service = kernel_with(plugins, tmp_path)
    with pytest.raises(
        UsageError, match=r"Chat.Reply: the template loops over 'messages', so give it a list: --var-json"
    ):
        await invoke(built, "Chat.Reply", messages="hello")
    assert service.requests == []


async def test_an_object_without_the_field_the_template_reads(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {
        "description": "d.",
        "template_format": "handlebars",
        "input_variables": [{"name": "customer", "description": "who", "is_required": True}],
    }
    function_folder(plugins, "Shop", "Greet", "Dear {{customer.firstName}} {{customer.lastName}}", config)
    built, service = kernel_with(plugins, tmp_path)
    with pytest.raises(
        UsageError, match=r"reads customer.firstName, customer.lastName, so give 'customer' as an object"
    ):
        await invoke(built, "Shop.Greet", customer="Ann")
    with pytest.raises(UsageError, match=r"'customer' has no 'lastName'"):
        await invoke(built, "Shop.Greet", customer={"firstName": "Ann"})
    await invoke(built, "Shop.Greet", customer={"firstName": "Ann", "lastName": "Lee"})
    assert service.requests[-1].prompt == "Dear Ann Lee"


def test_cli_vars_file_and_var_json(tmp_path: Path, openai_server) -> None:
    import yaml

    plugins = tmp_path / "plugins"
    write(plugins, "Chat/reply.yaml", yaml.safe_dump(CHAT_LOOP))
    vars_file = write(tmp_path, "vars.yaml", "messages:\n  - {role: user, content: from the file}\n")
    env = {"KERNEL_APP_SERVICE": "openai", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_server.base_url}
    bad = run_cli("--plugins-dir", str(plugins), "run", "Chat.Reply", "--var-json", "messages=[oops", **env)
    assert bad.returncode == 2 and "--var-json messages: invalid JSON at column 2" in bad.stderr
    openai_server.queue("an answer")
    ok = run_cli("--plugins-dir", str(plugins), "run", "Chat.Reply", "--vars", str(vars_file), **env)
    assert ok.returncode == 0 and ok.stdout.strip() == "an answer", ok.stderr
    assert openai_server.requests[-1].body["messages"] == [{"role": "user", "content": "from the file"}]


# 6. a user's plugin named like a built-in


@pytest.mark.e2e
def test_a_users_folder_replaces_the_builtin_of_the_same_name(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    function_folder(plugins, "BusinessThinking", "Mine", "Mine: {{$input}}", {"description": "Mine."})
    problems = lint(plugins)
    assert any("warning: plugin BusinessThinking replaces the built-in BusinessThinking" in p for p in problems)
    result = run_cli("--plugins-dir", str(plugins), "plugins", "list", "--json")
    listed = {f"{f['plugin']}.{f['function']}": f for f in json.loads(result.stdout)}
    assert listed["BusinessThinking.Mine"]["source"] == str(plugins / "BusinessThinking")
    assert "BusinessThinking.SWOT" not in listed  # the built-in is replaced, not merged
    assert listed["DesignThinking.Define"]["source"] == "built-in"


# 7. lint accuracy


def test_fields_inside_each_are_not_undeclared_but_the_loop_variable_is(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {"description": "d.", "template_format": "handlebars"}
    function_folder(plugins, "Loop", "Fn", "{{#each items}}\n- {{name}}: {{this.price}}\n{{/each}}", config)
    problems = lint(plugins)
    assert problems == [
        f"{plugins}/Loop/Fn/skprompt.txt:1: warning: template variable 'items' is not declared "
        '(a loop iterates over it): declare it in input_variables (with a "default" if it is optional)'
    ]


def test_yaml_findings_point_at_the_line_of_the_file(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    text = "name: Fn\ndescription: d.\ntemplate: |\n  Line one\n  Hi {{$who}}\n"
    write(plugins, "Y/fn.yaml", text)
    (problem,) = lint(plugins)
    assert problem.startswith(f"{plugins}/Y/fn.yaml:5: warning: template variable 'who' is not declared")


def test_a_misspelt_variable_key_is_a_warning_with_the_right_spelling(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {"description": "d.", "input_variables": [{"name": "input", "description": "t", "required": True}]}
    function_folder(plugins, "K", "Fn", "{{$input}}", config)
    (problem,) = lint(plugins)
    assert (
        "warning: input_variables[0] (input): unknown key 'required' (ignored): did you mean \"is_required\"" in problem
    )


@pytest.mark.parametrize(
    ("template_format", "template", "expected"),
    [
        ("semantic-kernel", "Hi {{$input", ":1: template syntax error: '{{' is never closed with '}}'"),
        ("handlebars", "One\n{{#if input}}yes", ":2: template syntax error: {{#if}} is never closed with {{/if}}"),
        ("handlebars", "{{#each a}}{{/if}}", ":1: template syntax error: {{/if}} does not close {{/each}}"),
        ("jinja2", "{% if input %}yes", ":1: template syntax error: Unexpected end of template"),
    ],
)
def test_template_syntax_errors_in_all_three_formats(
    tmp_path: Path, template_format: str, template: str, expected: str
) -> None:
    plugins = tmp_path / "plugins"
    function_folder(plugins, "S", "Fn", template, {"description": "d.", "template_format": template_format})
    problems = lint(plugins)
    assert any(expected in p for p in problems), problems


def test_a_config_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write(plugins, "B/Fn/skprompt.txt", "Say {{$input}}")
    config = {"description": "d.", "input_variables": [{"name": "input", "description": "t"}]}
    write(plugins, "B/Fn/config.json", json.dumps(config), encoding="utf-8-sig")
    assert lint(plugins) == []


# 8. empty defaults


async def test_an_empty_default_is_required_in_both_schemas(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    current = {
        "schema": 1,
        "description": "Translate.",
        "input_variables": [
            {"name": "input", "description": "Text", "default": ""},
            {"name": "language", "description": "Language to translate to", "default": ""},
        ],
    }
    old = {
        "schema": 1,
        "type": "completion",
        "description": "Translate.",
        "input": {
            "parameters": [
                {"name": "input", "description": "Text", "defaultValue": ""},
                {"name": "language", "description": "Language", "defaultValue": ""},
            ]
        },
    }
    prompt = "Translate the input below into {{$language}}\n\n{{$input}}"
    function_folder(plugins, "Writer", "Translate", prompt, current)
    function_folder(plugins, "OldWriter", "Translate", prompt, old)
    built, service = kernel_with(plugins, tmp_path)
    for name in ("Writer.Translate", "OldWriter.Translate"):
        with pytest.raises(MissingVariableError, match=rf"{name}: missing required variable 'language'"):
            await invoke(built, name, input="Bonjour")
    assert service.requests == []


@pytest.mark.e2e
def test_explicit_is_required_false_makes_an_empty_default_optional(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    config = {
        "description": "Joke.",
        "input_variables": [{"name": "style", "description": "hint", "default": "", "is_required": False}],
    }
    function_folder(plugins, "Fun", "Joke", "A joke. Style: {{$style}}", config)
    result = run_cli("--plugins-dir", str(plugins), "plugins", "list", "--json")
    (joke,) = [f for f in json.loads(result.stdout) if f["plugin"] == "Fun"]
    assert joke["parameters"] == [{"name": "style", "description": "hint", "default": None, "required": False}]


async def test_repl_run_takes_var_json_and_vars_like_the_cli(tmp_path: Path) -> None:
    import yaml

    from kernel_app.commands.dispatch import ChatSession

    plugins = tmp_path / "plugins"
    write(plugins, "Chat/reply.yaml", yaml.safe_dump(CHAT_LOOP))
    vars_file = write(tmp_path, "chat.yaml", "messages:\n  - {role: user, content: from the file}\n")
    built, service = kernel_with(plugins, tmp_path)
    session = ChatSession(built.kernel)
    reply = await session.handle('/run Chat.Reply --var-json messages=\'[{"role": "user", "content": "hi there"}]\'')
    assert not reply.is_error, reply.text
    assert service.requests[-1].messages == [{"role": "user", "content": "hi there"}]
    reply = await session.handle(f"/run Chat.Reply --vars {vars_file}")
    assert not reply.is_error, reply.text
    assert service.requests[-1].messages == [{"role": "user", "content": "from the file"}]
    reply = await session.handle("/run Chat.Reply --var-json messages=[oops")
    assert reply.is_error and "--var-json messages: invalid JSON" in reply.text


def test_lint_says_what_happens_to_settings_keyed_by_an_unknown_service(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    variables = [{"name": "input", "description": "t"}]
    one = {"description": "d.", "input_variables": variables, "execution_settings": {"chat": {"max_tokens": 1}}}
    two = {"description": "d.", "input_variables": variables, "execution_settings": {"a": {}, "b": {}}}
    function_folder(plugins, "K", "One", "{{$input}}", one)
    function_folder(plugins, "K", "Two", "{{$input}}", two)
    problems = lint(plugins)
    assert any("One/config.json: warning: execution_settings are keyed by 'chat'" in p for p in problems)
    assert any("Two/config.json: warning: execution_settings are keyed by 'a', 'b'" in p for p in problems)


def test_the_http_plugin_is_off_unless_configured(tmp_path: Path) -> None:
    from kernel_app.base.config import load_settings
    from kernel_app.kernel.builder import build_kernel

    plugins = tmp_path / "plugins"
    function_folder(plugins, "Web", "Fetch", "Page: {{http.getAsync $input}}", {"description": "d."})
    (problem,) = [p for p in lint(plugins) if "calls" in p]
    assert "calls http.getAsync, which no loaded plugin has (running it fails until one does):" in problem
    assert "semantic-kernel's http plugin reaches the network" in problem
    settings = load_settings(plugins_dirs=[plugins], memory_dir=tmp_path / "m", http_plugin=True)
    built = build_kernel(settings, chat_service=ScriptedChatCompletion(default="ok"))
    assert "Web.Fetch" not in built.report.failed
    assert "getAsync" in built.kernel.plugins["http"].functions
