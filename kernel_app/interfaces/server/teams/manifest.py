"""The Teams app package: ``manifest.json`` with the bot, a 192x192 colour icon and a 32x32 outline
icon, zipped, ready to upload in Teams (Apps > Manage your apps > Upload an app) or the Developer Portal.

The icons are drawn here (a plain PNG encoder, no imaging library): the colour icon a white "K" on the
accent colour, the outline icon the same "K" in white on transparent, as Teams asks.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kernel_app import __version__
from kernel_app.base.errors import UsageError

MANIFEST_VERSION = "1.17"
SCHEMA = f"https://developer.microsoft.com/en-us/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
ACCENT = (0x2B, 0x57, 0x9A)  # #2B579A
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
COMMANDS = (
    ("/help", "What I can do"),
    ("/run", "Run a function: /run BusinessThinking.SWOT a bakery"),
    ("/plan", "Plan a goal with the plugins, approve it, run it"),
    ("/ask", "Answer from saved memory: /ask SWOT How can we earn more?"),
    ("/reset", "Start a new conversation"),
)


def _png(width: int, height: int, pixel: Any) -> bytes:
    """RGBA PNG; ``pixel(x, y)`` returns (r, g, b, a)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows.extend(pixel(x, y))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _k(x: float, y: float) -> bool:
    """The letter K in the unit square (x, y in 0..1): a stem and two arms."""
    if not (0.25 <= y <= 0.75):
        return False
    if 0.28 <= x <= 0.40:
        return True
    middle = 0.5
    reach = abs(y - middle) * 0.9 + 0.40  # the arms leave the stem at mid-height
    return abs(x - reach) <= 0.07 and x >= 0.40


def color_icon() -> bytes:
    return _png(192, 192, lambda x, y: (255, 255, 255, 255) if _k(x / 192, y / 192) else (*ACCENT, 255))


def outline_icon() -> bytes:
    return _png(32, 32, lambda x, y: (255, 255, 255, 255) if _k(x / 32, y / 32) else (0, 0, 0, 0))


def manifest(
    app_id: str, endpoint: str, *, name: str = "Kernel App", developer_url: str | None = None
) -> dict[str, Any]:
    """``manifest.json`` for the bot ``app_id`` (the Entra app id) served at ``endpoint``."""
    if not _GUID.match(app_id):
        raise UsageError(f"--app-id {app_id!r} is not an Entra application (client) id, a GUID")
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"--endpoint {endpoint!r}: Teams reaches bots over https, e.g. https://HOST/api/messages")
    site = developer_url or f"https://{parts.netloc}"
    return {
        "$schema": SCHEMA,
        "manifestVersion": MANIFEST_VERSION,
        "version": __version__,
        "id": app_id,
        "developer": {
            "name": name,
            "websiteUrl": site,
            "privacyUrl": site,
            "termsOfUseUrl": site,
        },
        "name": {"short": name[:30], "full": f"{name}: plugins, plans and memory"[:100]},
        "description": {
            "short": "Run plugins, plan and approve multi-step work, ask saved memory."[:80],
            "full": (
                "A Semantic Kernel assistant: talk to it, run a plugin with /run, plan a goal with /plan and "
                "approve the plan on its card before anything runs, and ask saved memory with /ask."
            ),
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#{:02X}{:02X}{:02X}".format(*ACCENT),
        "bots": [
            {
                "botId": app_id,
                "scopes": ["personal", "team", "groupChat"],
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [
                    {
                        "scopes": ["personal", "team", "groupChat"],
                        "commands": [{"title": title, "description": about} for title, about in COMMANDS],
                    }
                ],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [parts.hostname],
    }


def write_package(path: Path, app_id: str, endpoint: str, *, name: str = "Kernel App") -> Path:
    """The zipped package (manifest.json, color.png, outline.png at its root)."""
    data = manifest(app_id, endpoint, name=name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        package.writestr("color.png", color_icon())
        package.writestr("outline.png", outline_icon())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path
