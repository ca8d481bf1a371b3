"""The web page's routes over HTTP: the page and its files (open, under a strict content policy, nothing
from elsewhere), how to sign in, and markdown rendered for it (behind the key like the API)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kernel_app.interfaces.server.entra import EntraConfig, EntraValidator
from kernel_app.interfaces.server.web import sign_in
from kernel_app.interfaces.server.web.routes import ASSETS, STATIC
from tests.support.server import make_app, running
from tests.support.tool_scripted import ToolScripted

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as tomli (a dependency there)
    import tomli as tomllib

KEY = "k" * 24


def test_sign_in_says_which_token_to_paste() -> None:
    assert sign_in(False, None) == {"mode": "none"}
    assert sign_in(True, None) == {"mode": "key"}
    entra = EntraValidator(EntraConfig(tenant_id="tenant-1", client_id="client-1"))
    assert sign_in(True, entra) == {
        "mode": "key-or-entra",
        "tenant_id": "tenant-1",
        "client_id": "client-1",
        "scope": "api://client-1/access_as_user",
        "authority": "https://login.microsoftonline.com/tenant-1",
    }
    assert sign_in(False, entra)["mode"] == "entra"


def test_the_wheel_carries_the_page() -> None:
    """The page's files reach a wheel only through package-data: each must match one of its patterns."""
    root = Path(__file__).resolve().parents[3]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["kernel_app"]
    files = sorted(STATIC.iterdir())
    assert {path.name for path in files} == {"index.html", *ASSETS}  # every file is served
    for path in files:
        relative = path.relative_to(root / "kernel_app").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    with running(make_app(tmp_path, ToolScripted(), api_keys=[KEY])) as url:
        yield url


@pytest.mark.e2e
def test_the_page_is_open_and_the_api_behind_the_key(served: str) -> None:
    url = served
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    files = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert files and all(file.startswith("/web/") for file in files)  # nothing from elsewhere
    for file in ["/web/api.js", "/web/chat.js", "/web/plans.js", "/web/functions.js", "/web/memory.js", *files]:
        served_file = httpx.get(f"{url}{file}")
        assert served_file.status_code == 200, file
        assert served_file.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{url}/web/app.js").headers["content-type"].startswith("text/javascript")
    imports = re.findall(r'from "\./([a-z]+\.js)"', httpx.get(f"{url}/web/app.js").text)
    assert imports and all(httpx.get(f"{url}/web/{name}").status_code == 200 for name in imports)
    signed = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{url}/web/nothing.js").status_code == 401  # only the page's own files are open
    assert httpx.get(f"{url}/web/nothing.js", headers=signed).status_code == 404
    assert httpx.get(f"{url}/web/..%2Frender.py", headers=signed).status_code == 404
    assert httpx.get(f"{url}/web/config.json").json() == {"mode": "key"}
    assert httpx.get(f"{url}/v1/conversations").status_code == 401
    assert httpx.post(f"{url}/web/render", json={"texts": ["# hi"]}).status_code == 401


@pytest.mark.e2e
def test_markdown_is_rendered_for_the_page(served: str) -> None:
    url = served
    rendered = httpx.post(
        f"{url}/web/render",
        json={"texts": ["| a |\n|---|\n| 1 |", "<script>alert(1)</script>"]},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert rendered.status_code == 200
    table, script = rendered.json()["html"]
    assert "<td>1</td>" in table and script == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    too_many = httpx.post(f"{url}/web/render", json={"texts": ["x"] * 201}, headers={"Authorization": f"Bearer {KEY}"})
    assert too_many.status_code == 400 or too_many.status_code == 422
