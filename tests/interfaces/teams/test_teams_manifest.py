"""``kernel-app teams manifest``: the zipped Teams app package, as a user runs it, checked against Teams'
own manifest schema (vendored), and its command menu against /help in Teams."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.errors import UsageError
from tests.support.cli import run_cli

APP_ID = "0a1b2c3d-1111-2222-3333-444455556666"


def schema_errors(data: dict[str, Any]) -> list[str]:
    """Where ``data`` breaks the vendored Teams schema (the draft it declares, formats checked)."""
    from jsonschema import validators

    from kernel_app.interfaces.server.teams.manifest import schema

    checker = validators.validator_for(schema())
    found = checker(schema(), format_checker=checker.FORMAT_CHECKER).iter_errors(data)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def png_size_and_alpha(data: bytes) -> tuple[int, int, set[int]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert (depth, color) == (8, 6)  # 8-bit RGBA
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    raw = zlib.decompress(data[idat + 4 : idat + 4 + length])
    stride = 1 + width * 4
    alphas = {raw[row * stride + 1 + x * 4 + 3] for row in range(height) for x in range(width)}
    return width, height, alphas


@pytest.mark.e2e
def test_manifest_writes_the_zipped_package_with_the_bot_and_two_icons(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    done = run_cli(
        "teams", "manifest", "--app-id", APP_ID, "--endpoint", "https://bot.example.com/api/messages", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "app.zip" in done.stdout
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
        color = png_size_and_alpha(package.read("color.png"))
        outline = png_size_and_alpha(package.read("outline.png"))
    assert manifest["id"] == APP_ID and manifest["manifestVersion"] == "1.17"
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID and set(bot["scopes"]) == {"personal", "team", "groupChat"}
    titles = [c["title"] for c in bot["commandLists"][0]["commands"]]
    assert titles == ["/run", "/plan", "/ask", "/results", "/new", "/functions", "/help"]
    assert manifest["validDomains"] == ["bot.example.com"]
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert all(manifest["developer"][k].startswith("https://") for k in ("websiteUrl", "privacyUrl", "termsOfUseUrl"))
    assert color[:2] == (192, 192) and color[2] == {255}  # opaque
    assert outline[:2] == (32, 32) and outline[2] == {0, 255}  # white on transparent
    assert schema_errors(manifest) == []  # what the command wrote, as Teams' schema reads it
    # bot.example.com is no one's privacy statement: said on stderr, not refused
    (warning,) = done.stderr.strip().splitlines()
    assert warning.startswith("warning: before publishing to an org catalogue")
    for field in ("developer.websiteUrl", "developer.privacyUrl", "developer.termsOfUseUrl"):
        assert field in warning


@pytest.mark.e2e
def test_a_name_over_teams_limit_and_the_all_zero_app_id_are_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    endpoint = ("--endpoint", "https://bot.contoso.com/api/messages", "-o", str(out))
    long = run_cli("teams", "manifest", "--app-id", APP_ID, "--name", "N" * 40, *endpoint)
    assert long.returncode == 2 and long.stderr.strip().count("\n") == 0
    assert "--name is 40 characters" in long.stderr and "at most 30" in long.stderr
    zero = run_cli("teams", "manifest", "--app-id", "00000000-0000-0000-0000-000000000000", *endpoint)
    assert zero.returncode == 2 and zero.stderr.strip().count("\n") == 0
    assert "--app-id" in zero.stderr and "all-zero placeholder" in zero.stderr
    assert not out.exists()
    shown = run_cli("teams", "manifest", "--help")
    assert "00000000-0000" not in shown.stdout  # its own example no longer shows the placeholder


@pytest.mark.e2e
def test_real_pages_for_the_developer_leave_no_warning(tmp_path: Path) -> None:
    done = run_cli(
        "teams",
        "manifest",
        "--app-id",
        APP_ID,
        "--endpoint",
        "https://bot.contoso.com/api/messages",
        "--website-url",
        "https://contoso.com",
        "--privacy-url",
        "https://contoso.com/privacy",
        "--terms-url",
        "https://contoso.com/terms",
        "-o",
        str(tmp_path / "app.zip"),
    )
    assert done.returncode == 0 and done.stderr == ""
    with zipfile.ZipFile(tmp_path / "app.zip") as package:
        developer = json.loads(package.read("manifest.json"))["developer"]
    assert developer["privacyUrl"] == "https://contoso.com/privacy"
    assert developer["termsOfUseUrl"] == "https://contoso.com/terms"


@pytest.mark.e2e
def test_a_bad_app_id_or_endpoint_is_one_line(tmp_path: Path) -> None:
    bad_id = run_cli("teams", "manifest", "--app-id", "my-bot", "--endpoint", "https://x.example.com/api/messages")
    assert bad_id.returncode == 2 and bad_id.stderr.strip().count("\n") == 0 and "GUID" in bad_id.stderr
    plain = run_cli("teams", "manifest", "--app-id", APP_ID, "--endpoint", "http://127.0.0.1:8000/api/messages")
    assert plain.returncode == 2 and "https" in plain.stderr and plain.stderr.strip().count("\n") == 0
    assert not (tmp_path / "kernel-app-teams.zip").exists()


def test_the_manifest_keeps_the_teams_schema_limits() -> None:
    import re

    from kernel_app.interfaces.server.teams.manifest import manifest

    data = manifest(APP_ID, "https://bot.example.com/api/messages")
    assert schema_errors(data) == []
    with pytest.raises(UsageError, match="at most 30"):
        manifest(APP_ID, "https://bot.example.com/api/messages", name="x" * 31)
    assert manifest(APP_ID, "https://bot.example.com/api/messages", name="x" * 30)["name"]["short"] == "x" * 30
    required = ("$schema", "manifestVersion", "version", "id", "developer", "name", "description", "icons")
    assert all(key in data for key in (*required, "accentColor"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", data["version"])  # Teams takes a plain semantic version only
    assert re.fullmatch(r"#[0-9A-F]{6}", data["accentColor"])
    assert len(data["name"]["short"]) <= 30 and len(data["name"]["full"]) <= 100
    assert len(data["description"]["short"]) <= 80 and len(data["description"]["full"]) <= 4000
    (commands,) = data["bots"][0]["commandLists"]
    assert len(commands["commands"]) <= 10
    assert all(len(c["title"]) <= 32 and len(c["description"]) <= 128 for c in commands["commands"])
    assert set(data["permissions"]) <= {"identity", "messageTeamMembers"}


def test_the_vendored_schema_is_teams_own_for_the_version_written() -> None:
    from kernel_app.interfaces.server.teams.manifest import MANIFEST_VERSION, SCHEMA_FILE, schema

    assert SCHEMA_FILE.parent.name == f"v{MANIFEST_VERSION}"
    assert schema()["properties"]["manifestVersion"]["const"] == MANIFEST_VERSION
    readme = (SCHEMA_FILE.parent.parent / "README.md").read_text()
    assert "@microsoft/app-manifest" in readme and MANIFEST_VERSION in readme
    assert "MIT License" in (SCHEMA_FILE.parent.parent / "LICENSE").read_text()


def test_what_teams_schema_refuses_is_refused_naming_the_field() -> None:
    from kernel_app.interfaces.server.teams.manifest import check, manifest

    data = manifest(APP_ID, "https://bot.contoso.com/api/messages")
    (commands,) = data["bots"][0]["commandLists"]
    commands["commands"] = commands["commands"] * 2  # 14: Teams takes at most 10 a scope
    with pytest.raises(UsageError, match=r"schema at bots\.0\.commandLists\.0\.commands: more than 10 items$"):
        check(data)
    data = manifest(APP_ID, "https://bot.contoso.com/api/messages")
    data["developer"]["privacyUrl"] = "ftp://contoso.com/privacy"
    with pytest.raises(UsageError, match=r"at developer\.privacyUrl: does not match \^\[Hh\]"):
        check(data)


@pytest.mark.parametrize(
    ("url", "placeholder"),
    [
        ("https://bot.example.com/privacy", True),
        ("https://example.org", True),
        ("https://localhost:3978", True),
        ("https://127.0.0.1/terms", True),
        ("https://10.0.0.4/terms", True),
        ("https://my-bot.test", True),
        ("https://contoso.com/privacy", False),
        ("https://examples.com", False),  # not the reserved example.com
    ],
)
def test_example_and_local_pages_are_placeholders(url: str, placeholder: bool) -> None:
    from kernel_app.interfaces.server.teams.manifest import placeholder_host

    assert placeholder_host(url) is placeholder


def test_the_command_menu_is_the_help_teams_shows() -> None:
    """Same commands, same words: each menu entry is a /help item in Teams, its description /help's text."""
    from kernel_app.commands.listing import HELP
    from kernel_app.interfaces.server.teams.agent import OFFERED
    from kernel_app.interfaces.server.teams.manifest import manifest

    (commands,) = manifest(APP_ID, "https://bot.contoso.com/api/messages")["bots"][0]["commandLists"]
    shown = OFFERED.help(HELP)
    items = [line for line in shown.splitlines() if line.startswith("- **/")]
    assert [c["title"] for c in commands["commands"]] == [item.split("**")[1] for item in items]
    for entry, item in zip(commands["commands"], items, strict=True):
        about = entry["description"].split(" (e.g. ")[0]
        assert about[:1].lower() + about[1:] in item, (entry, item)
        assert len(entry["title"]) <= 32 and len(entry["description"]) <= 128
    assert "/new" in [c["title"] for c in commands["commands"]] and "**/reset**" in shown  # one command, two names
