"""Plugin folders as their authors wrote them: loading, both config schemas, template checks, names.

- ``loader``: a directory of plugin folders -> checked prompt and native functions, with every problem.
- ``prompt_config``: config.json / YAML in either Semantic Kernel schema -> the current schema.
- ``template_lint``: what a template reads and calls, and its syntax errors, in all three formats.
- ``function_lookup``: the one rule for resolving ``{{Plugin.function}}`` (case-insensitive, as .NET).
- ``structured_vars``: JSON/YAML values for templates that loop or read fields.
- ``prompty``: a ``.prompty`` file -> the same config and a chat template (``prompty_export``: the way back).
- ``skills``: an Agent Skill folder (``SKILL.md``) -> a prompt function and its folder, read-only.
- ``front_matter``: the YAML front matter both share, with the line of every key.
"""
