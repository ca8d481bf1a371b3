"""Agent Skills (``SKILL.md`` folders): the instructions as a prompt, the folder read-only, scripts if trusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from kernel_app.base.config import Settings
from kernel_app.base.errors import UsageError
from kernel_app.kernel.plugin_folders.loader import LoadReport, PluginDirectory, load_plugin_directories
from kernel_app.kernel.plugin_folders.skills import RESOURCE_LIMIT, read_file, run_script
from kernel_app.providers.scripted import ScriptedChatCompletion, call

SKILL = """\
---
name: unit-converter
description: Convert between units using a factor. Use when asked to convert miles or kilograms.
license: MIT
metadata:
  author: someone
---

## Usage

1. Read `references/TABLE.md` to find the factor (e.g. miles -> km), for values < 1000 & more.
2. Run `scripts/convert.py --value <number> --factor <factor>`.
3. Never write {{$input}} or {{ name }}: braces are text here.
"""

CONVERT = """\
import argparse, json
p = argparse.ArgumentParser()
p.add_argument("--value", type=float, required=True)
p.add_argument("--factor", type=float, required=True)
a = p.parse_args()
print(json.dumps({"result": round(a.value * a.factor, 4)}))
"""


def make_skill(parent: Path, name: str = "unit-converter", text: str = SKILL) -> Path:
    folder = parent / name
    (folder / "references").mkdir(parents=True)
    (folder / "scripts").mkdir()
    (folder / "SKILL.md").write_text(text, encoding="utf-8")
    (folder / "references" / "TABLE.md").write_text("miles -> km: 1.60934\n", encoding="utf-8")
    (folder / "scripts" / "convert.py").write_text(CONVERT, encoding="utf-8")
    return folder


def load(root: Path, trusted: bool = False, specs_only: bool = False) -> LoadReport:
    return load_plugin_directories([PluginDirectory(root, trusted=trusted)], specs_only=specs_only)


def test_a_skill_in_a_plugin_folder_is_a_prompt_and_a_reader(tmp_path: Path) -> None:
    make_skill(tmp_path / "Tools")
    report = load(tmp_path)
    assert report.errors == []
    names = [f.name for f in report.plugins["Tools"]]
    assert names == ["unit_converter", "unit_converter_read_file"]
    prompt = report.plugins["Tools"][0]
    assert prompt.description.startswith("Convert between units using a factor.")
    assert [p.name for p in prompt.metadata.parameters] == ["input"]
    # Untrusted: the scripts are named in one warning, and no function runs them.
    warnings = [str(p).replace(str(tmp_path) + "/", "") for p in report.problems]
    assert warnings == [
        "Tools/unit-converter/scripts/convert.py: warning: the skill's scripts (scripts/convert.py) do not run: the"
        " directory is untrusted: if you trust this code, mark the directory trusted (--trust DIR, or trusted_dirs"
        " in the config file)"
    ]


async def test_the_prompt_is_the_instructions_as_written_plus_the_users_input(tmp_path: Path) -> None:
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.kernel.runner import resolve_function, run_chain

    make_skill(tmp_path / "Tools")
    service = ScriptedChatCompletion(default="42 km")
    built = build_kernel(Settings(plugins_dirs=[tmp_path], memory_dir=tmp_path / "m"), chat_service=service)
    function = resolve_function(built.kernel, "Tools.unit_converter", built.report)
    result = await run_chain(built.kernel, [function], input="26.2 miles in km?")
    assert "42 km" in result.result
    system, user = service.requests[0].messages
    assert system["role"] == "system" and user == {"role": "user", "content": "26.2 miles in km?"}
    text = system["content"]
    assert text.startswith("## Usage")
    assert "values < 1000 & more" in text  # XML-special characters arrive as written
    assert "Never write {{$input}} or {{ name }}: braces are text here." in text  # not a template
    assert "- references/TABLE.md" in text and "- scripts/convert.py" in text
    assert "Tools-unit_converter_read_file" in text
    assert "cannot be run here" in text
    assert service.requests[0].offered == ["Tools-unit_converter_read_file"]  # untrusted: no script runner


@pytest.mark.e2e  # the script runs in a subprocess
async def test_the_model_reads_a_resource_and_runs_a_script_when_trusted(tmp_path: Path) -> None:
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.kernel.runner import resolve_function, run_chain

    make_skill(tmp_path / "Tools")
    service = ScriptedChatCompletion(
        [
            call("Tools.unit_converter_read_file", path="references/TABLE.md"),
            call(
                "Tools.unit_converter_run_script",
                script="scripts/convert.py",
                command_line="--value 26.2 --factor 1.60934",
            ),
            "26.2 miles is 42.1647 km",
        ]
    )
    settings = Settings(plugins_dirs=[tmp_path], trusted_dirs=[tmp_path], memory_dir=tmp_path / "m")
    built = build_kernel(settings, chat_service=service)
    assert [f.name for f in built.report.plugins["Tools"]][-1] == "unit_converter_run_script"
    function = resolve_function(built.kernel, "Tools.unit_converter", built.report)
    result = await run_chain(built.kernel, [function], input="26.2 miles in km?")
    assert "42.1647 km" in result.result
    assert sorted(service.requests[0].offered or []) == [
        "Tools-unit_converter_read_file",
        "Tools-unit_converter_run_script",
    ]
    results = service.requests[-1].function_results
    assert results[0] == "miles -> km: 1.60934\n"
    assert json.loads(results[1]) == {"result": 42.1647}


def test_reading_stays_inside_the_skill_folder(tmp_path: Path) -> None:
    folder = make_skill(tmp_path / "Tools")
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    (folder / "references" / "link.md").symlink_to(tmp_path / "secret.txt")
    (folder / "references" / "big.md").write_text("x" * (RESOURCE_LIMIT + 1), encoding="utf-8")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    assert read_file(folder, "references/TABLE.md") == "miles -> km: 1.60934\n"
    assert read_file(folder, "./SKILL.md").startswith("---")
    refusals = {
        "../secret.txt": "leaves the skill folder ('..')",
        "references/../../secret.txt": "leaves the skill folder ('..')",
        str(tmp_path / "secret.txt"): "is an absolute path",
        "references/link.md": "leads outside the skill folder (a link)",
        "references/big.md": f"over the {RESOURCE_LIMIT}-byte limit",
        "logo.png": "is not text (a binary file)",
        "references/none.md": "is not a file of the skill",
        "references": "is not a file of the skill",
        "": "give the path of a file of the skill",
    }
    for path, expected in refusals.items():
        with pytest.raises(UsageError) as raised:
            read_file(folder, path)
        assert expected in str(raised.value), path
        assert "\n" not in str(raised.value)
    # A link that leaves the folder is not offered in the list either.
    report = load(tmp_path)
    prompt = report.plugins["Tools"][0]
    template = prompt.prompt_template.prompt_template_config.template
    assert "references/TABLE.md" in template and "link.md" not in template


@pytest.mark.e2e  # scripts run in subprocesses
def test_only_the_skills_own_scripts_run(tmp_path: Path) -> None:
    folder = make_skill(tmp_path / "Tools")
    (folder / "references" / "tool.py").write_text("print('no')\n", encoding="utf-8")
    (folder / "scripts" / "fail.py").write_text("import sys; sys.exit('bad input')\n", encoding="utf-8")
    assert json.loads(run_script(folder, "scripts/convert.py", "--value 2 --factor 3")) == {"result": 6.0}
    with pytest.raises(UsageError, match=r"only scripts/\*\.py run"):
        run_script(folder, "references/tool.py")
    with pytest.raises(UsageError, match=r"scripts/fail.py failed \(exit status 1\): bad input"):
        run_script(folder, "scripts/fail.py")
    with pytest.raises(UsageError, match="leaves the skill folder"):
        run_script(folder, "../../x.py")


def test_front_matter_problems_name_the_line(tmp_path: Path) -> None:
    make_skill(tmp_path / "S", "no-description", "---\nname: no-description\nlicense: MIT\n---\nDo it.\n")
    make_skill(tmp_path / "S", "renamed", "---\nname: other-name\ndescription: d\nversion: 2\n---\nDo it.\n")
    make_skill(tmp_path / "S", "empty", "---\nname: empty\ndescription: d\n---\n\n")
    make_skill(tmp_path / "S", "bare", "Just instructions, no front matter.\n")
    report = load(tmp_path)
    found = sorted(str(p).replace(str(tmp_path) + "/", "") for p in report.problems if "scripts" not in p.message)
    assert found == [
        "S/bare/SKILL.md:1: no front matter: start SKILL.md with ---, name: and description:, then ---",
        "S/empty/SKILL.md:5: no instructions: write the instructions below the front matter",
        "S/no-description/SKILL.md:2: no description: add `description:` saying what the skill does and when to use it",
        "S/renamed/SKILL.md:2: warning: name 'other-name' does not match the folder 'renamed' (the folder names the"
        " function): rename one so they match",
        "S/renamed/SKILL.md:4: warning: unknown key 'version' (ignored): the Agent Skills keys are allowed-tools,"
        " compatibility, description, license, metadata, name",
    ]
    assert sorted(report.failed) == ["S.bare", "S.empty", "S.no_description"]
    assert next(f.name for f in report.plugins["S"]) == "renamed"


def test_a_skill_folder_dropped_in_as_a_plugin_lists_and_lints(tmp_path: Path) -> None:
    from kernel_app.interfaces.cli.main import cli

    make_skill(tmp_path)
    listed = CliRunner().invoke(cli, ["--plugins-dir", str(tmp_path), "plugins", "list", "--json"])
    functions = {f"{f['plugin']}.{f['function']}": f for f in json.loads(listed.stdout)}
    assert functions["unit_converter.unit_converter"]["parameters"][0]["name"] == "input"
    assert functions["unit_converter.unit_converter_read_file"]["parameters"][0]["name"] == "path"
    assert "unit_converter.unit_converter_run_script" not in functions
    lint = CliRunner().invoke(cli, ["plugins", "lint", str(tmp_path)])
    assert lint.exit_code == 0
    assert lint.stdout.count("\n") == 1 and "do not run: the directory is untrusted" in lint.stdout
    trusted = CliRunner().invoke(cli, ["plugins", "lint", "--trust", str(tmp_path)])
    assert trusted.exit_code == 0 and trusted.stdout == ""
    assert "3 function(s) loaded" in trusted.stderr


def test_specs_and_kernel_functions_agree(tmp_path: Path) -> None:
    make_skill(tmp_path / "Tools")
    specs = load(tmp_path, trusted=True, specs_only=True).plugins["Tools"]
    functions = load(tmp_path, trusted=True).plugins["Tools"]
    assert [s.to_dict() for s in specs] == [
        {
            "plugin_name": f.metadata.plugin_name,
            "name": f.name,
            "description": f.description,
            "is_prompt": f.is_prompt,
            "parameters": [
                {
                    "name": p.name,
                    "description": p.description,
                    "default_value": p.default_value,
                    "is_required": p.is_required,
                    "type_": p.type_,
                    "include_in_function_choices": p.include_in_function_choices,
                }
                for p in f.metadata.parameters
            ],
        }
        for f in functions
    ]


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_a_linked_skill_folder_reads_its_own_files(tmp_path: Path) -> None:
    real = make_skill(tmp_path / "elsewhere")
    (tmp_path / "plugins" / "Tools").mkdir(parents=True)
    (tmp_path / "plugins" / "Tools" / "unit-converter").symlink_to(real, target_is_directory=True)
    report = load(tmp_path / "plugins")
    assert report.errors == []
    assert read_file(tmp_path / "plugins" / "Tools" / "unit-converter", "references/TABLE.md").startswith("miles")
