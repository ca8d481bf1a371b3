"""``kernel-app teams manifest``: the zipped Teams app package, as a user runs it."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.support.cli import run_cli

APP_ID = "0a1b2c3d-1111-2222-3333-444455556666"


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
    assert titles == ["/help", "/run", "/plan", "/ask", "/reset"]
    assert manifest["validDomains"] == ["bot.example.com"]
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert all(manifest["developer"][k].startswith("https://") for k in ("websiteUrl", "privacyUrl", "termsOfUseUrl"))
    assert color[:2] == (192, 192) and color[2] == {255}  # opaque
    assert outline[:2] == (32, 32) and outline[2] == {0, 255}  # white on transparent


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
