"""The Teams app package: ``manifest.json`` with the bot, a 192x192 colour icon and a 32x32 outline
icon, zipped, ready to upload in Teams (Apps > Manage your apps > Upload an app) or the Developer Portal.

What it writes is checked against Teams' own JSON Schema for the manifest version it writes (vendored in
``manifest_schema/``, with its licence and where it came from), so a package Teams would refuse is
refused here, naming the field. Its command menu is /help's list in Teams (:mod:`.offered`).

The icons are drawn here (a plain PNG encoder, no imaging library): the colour icon a white "K" on the
accent colour, the outline icon the same "K" in white on transparent, as Teams asks.
"""

from __future__ import annotations

import functools
import io
import ipaddress
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
from kernel_app.interfaces.server.teams.offered import command_menu

MANIFEST_VERSION = "1.17"
SCHEMA = f"https://developer.microsoft.com/en-us/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
SCHEMA_FILE = Path(__file__).parent / "manifest_schema" / f"v{MANIFEST_VERSION}" / "MicrosoftTeams.schema.json"
SHORT_NAME_CHARS = 30  # name.short's maxLength in the schema (developer.name, which --name also fills, allows 32)
ACCENT = (0x2B, 0x57, 0x9A)  # #2B579A
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# The developer's pages an org catalogue shows, and the options that set them.
PAGES = (("websiteUrl", "--website-url"), ("privacyUrl", "--privacy-url"), ("termsOfUseUrl", "--terms-url"))
# Hosts that are no one's public page: RFC 2606 / 6761 names, and loopback or private addresses.
_PLACEHOLDER_SUFFIXES = (".example", ".test", ".invalid", ".localhost", ".local")
_EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")


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
    app_id: str,
    endpoint: str,
    *,
    name: str = "Kernel App",
    website_url: str | None = None,
    privacy_url: str | None = None,
    terms_url: str | None = None,
) -> dict[str, Any]:
    """``manifest.json`` for the bot ``app_id`` (the Entra app id) served at ``endpoint``, checked against
    the schema. The developer's pages default to the endpoint's host (see :func:`publishing_warning`)."""
    if not _GUID.match(app_id):
        raise UsageError(f"--app-id {app_id!r} is not an Entra application (client) id, a GUID")
    if not app_id.strip("0-"):
        raise UsageError(
            f"--app-id {app_id} is the all-zero placeholder: give the bot's Entra application (client) id "
            "(Azure portal > App registrations)"
        )
    name = name.strip()
    if not name:
        raise UsageError("--name is empty: give the app's name in Teams")
    if len(name) > SHORT_NAME_CHARS:
        raise UsageError(
            f"--name is {len(name)} characters: Teams allows at most {SHORT_NAME_CHARS} for an app's name "
            f"(name.short in the v{MANIFEST_VERSION} manifest schema); give a shorter one"
        )
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"--endpoint {endpoint!r}: Teams reaches bots over https, e.g. https://HOST/api/messages")
    site = f"https://{parts.netloc}"
    pages = {"websiteUrl": website_url, "privacyUrl": privacy_url, "termsOfUseUrl": terms_url}
    for field, option in PAGES:
        given = pages[field]
        if given is not None and (urlsplit(given).scheme != "https" or not urlsplit(given).hostname):
            raise UsageError(f"{option} {given!r}: give the page's https:// address")
    data = {
        "$schema": SCHEMA,
        "manifestVersion": MANIFEST_VERSION,
        "version": __version__,
        "id": app_id,
        "developer": {"name": name, **{field: pages[field] or site for field, _ in PAGES}},
        "name": {"short": name, "full": f"{name}: plugins, plans and memory"},
        "description": {
            "short": "Run plugins, plan and approve multi-step work, ask saved memory.",
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
                "commandLists": [{"scopes": ["personal", "team", "groupChat"], "commands": command_menu()}],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [parts.hostname],
    }
    check(data)
    return data


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """Teams' JSON Schema for :data:`MANIFEST_VERSION` (``manifest_schema/README.md`` says where it is from)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def check(data: dict[str, Any]) -> None:
    """Raise a one-line UsageError naming the first field of ``data`` that Teams' schema refuses."""
    from jsonschema import validators
    from jsonschema.exceptions import best_match

    validator_class = validators.validator_for(schema())  # the draft the schema declares (draft-04)
    validator = validator_class(schema(), format_checker=validator_class.FORMAT_CHECKER)
    error = best_match(validator.iter_errors(data))
    if error is None:
        return
    where = ".".join(str(part) for part in error.absolute_path) or "the manifest"
    # jsonschema's own message repeats the whole value (14 commands...): the rule broken says it in a line.
    says = _BROKEN.get(str(error.validator))
    message = says.format(error.validator_value) if says else " ".join(error.message.split())
    message = message if len(message) <= 200 else message[:199] + "…"
    raise UsageError(f"manifest.json does not fit Teams' v{MANIFEST_VERSION} schema at {where}: {message}")


_BROKEN = {
    "maxItems": "more than {} items",
    "minItems": "fewer than {} items",
    "maxLength": "longer than {} characters",
    "minLength": "shorter than {} characters",
    "pattern": "does not match {}",
    "enum": "not one of {}",
    "type": "not of type {}",
}


def placeholder_host(url: str) -> bool:
    """Whether ``url`` is on a host that is no one's public page: an example or reserved name, a loopback or
    private address."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if not host or host == "localhost" or host.endswith(_PLACEHOLDER_SUFFIXES):
        return True
    if any(host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def publishing_warning(data: dict[str, Any], given: dict[str, str | None]) -> str | None:
    """One line naming the developer's pages that must be real before the app goes to an org catalogue:
    those on an example or local host, and those not ``given`` (they default to the bot's own address,
    which is no privacy statement). None when every page was given on a real host."""
    developer = data["developer"]
    flagged: list[str] = []
    reasons: dict[str, None] = {}  # in order, once each
    for field, option in PAGES:
        url = developer[field]
        if placeholder_host(url):
            reasons[f"{url} is an example or local address"] = None
        elif not given.get(field):
            reasons[f"{url} is only the bot's address"] = None
        else:
            continue
        flagged.append(f"developer.{field} ({option})")
    if not flagged:
        return None
    fields = ", ".join(flagged[:-1]) + (" and " if len(flagged) > 1 else "") + flagged[-1]
    return f"before publishing to an org catalogue, give real pages for {fields}: {'; '.join(reasons)}"


def write_package(path: Path, data: dict[str, Any]) -> Path:
    """The zipped package of the manifest ``data`` (manifest.json, color.png, outline.png at its root)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        package.writestr("color.png", color_icon())
        package.writestr("outline.png", outline_icon())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path
