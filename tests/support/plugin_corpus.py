"""What real plugin files declare, read independently of the loader under test: the corpus tests' oracle.

Both corpus tests use it: ``test_plugins_real_corpus.py`` (folders copied from public repositories, in
``../shared/plugins-real``) and ``test_package_corpus.py`` (files from published packages, in the cache
``tests/support/corpus_fetch.py`` fills). Each helper reads a file with plain YAML, JSON and regular
expressions, following the formats' documentation, so that a loader bug cannot hide in its own oracle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

SENT_SETTINGS = ("max_tokens", "temperature", "top_p", "presence_penalty", "frequency_penalty", "stop")


# region Semantic Kernel folders and YAML prompts


def declared_functions(directory: Path) -> dict[str, dict[str, Any]]:
    """``Plugin.Function`` -> {"config": raw config, "template": str, "format": str} for loadable prompts."""
    found: dict[str, dict[str, Any]] = {}
    plugin_folders = (
        [directory] if _is_plugin_folder(directory) else sorted(p for p in directory.iterdir() if p.is_dir())
    )
    for plugin in plugin_folders:
        for entry in sorted(plugin.iterdir()):
            if entry.is_dir() and (entry / "skprompt.txt").exists():
                config_path = entry / "config.json"
                config = json.loads(config_path.read_text(encoding="utf-8-sig")) if config_path.exists() else {}
                template = (entry / "skprompt.txt").read_text(encoding="utf-8-sig")
                found[f"{plugin.name}.{entry.name}"] = _spec(config, template)
            elif entry.suffix in (".yaml", ".yml"):
                raw = yaml.safe_load(entry.read_text(encoding="utf-8-sig"))
                if raw.get("template_format") == "liquid":
                    continue
                found[f"{plugin.name}.{raw['name']}"] = _spec(raw, raw["template"])
    return found


def _is_plugin_folder(folder: Path) -> bool:
    return any((c / "skprompt.txt").exists() or c.suffix in (".yaml", ".yml") for c in folder.iterdir())


def _spec(config: dict[str, Any], template: str) -> dict[str, Any]:
    return {"config": config, "template": template, "format": config.get("template_format", "semantic-kernel")}


def declared_variables(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Both schemas, as name/description/default/required (the rule documented in plugins/README.md)."""
    if "input_variables" in config:
        variables = []
        for v in config["input_variables"]:
            default = v.get("default")
            required = v.get("is_required", True) and default in (None, "")
            variables.append(
                {"name": v["name"], "description": v.get("description", ""), "default": default, "required": required}
            )
        return variables
    parameters = (config.get("input") or {}).get("parameters", [])
    return [
        {
            "name": p["name"],
            "description": p.get("description", ""),
            "default": p.get("defaultValue"),
            "required": p.get("defaultValue") in (None, ""),
        }
        for p in parameters
    ]


def declared_settings(config: dict[str, Any]) -> dict[str, Any]:
    sets = config.get("execution_settings")
    chosen = (sets.get("default") or next(iter(sets.values()))) if sets else (config.get("completion") or {})
    settings = {("stop" if k == "stop_sequences" else k): v for k, v in chosen.items()}
    return {k: v for k, v in settings.items() if k in SENT_SETTINGS}


def template_variables(spec: dict[str, Any]) -> set[str]:
    """Top-level variables the template reads, by simple patterns per format (not the loader's parser)."""
    template, kind = spec["template"], spec["format"]
    if kind == "semantic-kernel":
        blocks = re.findall(r"{{(.*?)}}", template, flags=re.DOTALL)
        return {name for block in blocks for name in re.findall(r"\$([A-Za-z_]\w*)", block)}
    if kind == "handlebars":
        loops = set(re.findall(r"{{#each\s+([A-Za-z_]\w*)", template))
        outside = re.sub(r"{{#each.*?{{/each}}", "", template, flags=re.DOTALL)
        plain = {m for m in re.findall(r"{{~?\s*([A-Za-z_]\w*)\s*~?}}", outside)}
        return loops | plain
    return set(re.findall(r"{%\s*for\s+\w+\s+in\s+([A-Za-z_]\w*)", template)) | set(
        re.findall(r"{{\s*([A-Za-z_]\w*)\s*}}", template)
    )


# endregion

# region .prompty files

_ROLE = re.compile(r"^\s*#?\s*(system|user|assistant|developer)\s*(\[[^\]]*\])?\s*:\s*$", re.IGNORECASE)


def identifier(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def prompty_parts(path: Path) -> tuple[dict[str, Any], str]:
    """Front matter and body, split by the spec's rule: YAML between the first two '---' lines."""
    text = path.read_text(encoding="utf-8")
    match = re.match(r"^---[ \t]*\n(.*?)^---[ \t]*\n?(.*)$", text, flags=re.DOTALL | re.MULTILINE)
    if not match:
        return {}, text
    return yaml.safe_load(match.group(1)) or {}, match.group(2)


def file_value(path: Path, value: Any) -> Any:
    found = re.fullmatch(r"\$\{file:(.+)\}", value.strip()) if isinstance(value, str) else None
    return json.loads((path.parent / found.group(1)).read_text(encoding="utf-8")) if found else value


def prompty_samples(path: Path) -> dict[str, Any]:
    front, _ = prompty_parts(path)
    sample = file_value(path, front.get("sample")) or {}
    return {name: file_value(path, value) for name, value in sample.items()}


def prompty_inputs(path: Path) -> dict[str, dict[str, Any]]:
    """Declared inputs in any of the shapes the corpus uses (mapping, list, inputSchema, ${file:})."""
    front, _ = prompty_parts(path)
    inputs = file_value(path, front.get("inputs", (front.get("inputSchema") or {}).get("properties")))
    if isinstance(inputs, list):
        return {item["name"]: item for item in inputs}
    return {name: spec if isinstance(spec, dict) else {} for name, spec in (inputs or {}).items()}


def prompty_roles(body: str) -> list[str]:
    """The messages the body's role lines make: leading text is the system's, a role with no text is dropped."""
    roles: list[tuple[str, list[str]]] = [("system", [])]
    for line in body.splitlines():
        marker = _ROLE.match(line)
        if marker:
            roles.append((marker.group(1).lower(), []))
        else:
            roles[-1][1].append(line)
    made = [role for role, lines in roles if any(line.strip() for line in lines)]
    # semantic-kernel sends a lone system message as the user's (ChatHistory.from_rendered_prompt).
    return ["user"] if made == ["system"] else made


def sample_values(path: Path, body: str) -> dict[str, Any]:
    """The file's samples; what the template reads without a sample or default gets a marked value."""
    inputs, values = prompty_inputs(path), prompty_samples(path)
    looped = set(re.findall(r"{%\s*for\s+\w+\s+in\s+(\w+)\s*%}", body))
    read = set(re.findall(r"{{\s*(\w+)", body)) | looped | set(re.findall(r"{%\s*if\s+(\w+)", body))
    for name in looped & set(values):
        if isinstance(values[name], dict):
            # contoso-chat's chat.json gives one document where the template loops over documents (its app
            # passes a list): jinja2 would loop over the keys and render str methods. Give it as a list.
            values[name] = [values[name]]
    for name in sorted(read - set(values) - {"item", "product", "message", "loop"}):
        if (inputs.get(name) or {}).get("default") is not None:
            continue
        values[name] = [] if name in looped else f"VALUE-{name}"
    return values


# endregion
