"""Entra ID token validation (no network: the identity provider's documents come from a dict) and the
Authenticate middleware over an in-process ASGI transport (no socket)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kernel_app.base.config import Settings
from kernel_app.base.errors import ConfigError
from kernel_app.base.identity import Identity
from kernel_app.interfaces.server.entra import EntraConfig, EntraValidator, Refused, Unavailable, entra_config
from kernel_app.interfaces.server.security import Authenticate, check_bind, identity_of
from tests.support.entra import (
    CLIENT_ID,
    OTHER_TENANT,
    TENANT,
    USER_OID,
    IdentityProvider,
    SigningKey,
    tampered,
    unsigned,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def validator(idp: IdentityProvider, clock: Clock | None = None, **config: Any) -> EntraValidator:
    settings = {"tenant_id": TENANT, "client_id": CLIENT_ID, "authority": idp.authority, **config}
    return EntraValidator(EntraConfig(**settings), fetch=idp.fetch, clock=clock or Clock())


def refusal(check: EntraValidator, token: str) -> Refused:
    with pytest.raises(Refused) as raised:
        check.validate(token)
    assert token not in raised.value.reason
    return raised.value


def test_a_valid_token_names_its_user() -> None:
    idp = IdentityProvider()
    identity = validator(idp).validate(idp.token())
    assert identity == Identity.for_user(TENANT, USER_OID, "Megan Bowen")
    assert identity.principal == f"entra:{TENANT}:{USER_OID}" and identity.kind == "entra"


def test_the_api_uri_is_an_audience_too_and_roles_stand_for_a_scope() -> None:
    idp = IdentityProvider()
    check = validator(idp)
    assert check.validate(idp.token(aud=f"api://{CLIENT_ID}")).object_id == USER_OID
    assert check.validate(idp.token(scp=None, roles=["Chat.ReadWrite"])).object_id == USER_OID


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({"exp": 1_000_000}, 401, "expired"),
        ({"aud": "api://someone-else"}, 401, "another API"),
        ({"iss": "https://login.example.test/common/v2.0"}, 401, "issuer"),
        ({"oid": None}, 401, "'oid'"),
        ({"tid": OTHER_TENANT}, 403, "tenant"),
        ({"scp": "User.Read"}, 403, "access_as_user"),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "no-oid", "other-tenant", "no-scope"],
)
def test_refusals_say_why_in_one_line(changes: dict[str, Any], status: int, reason: str) -> None:
    idp = IdentityProvider()
    refused = refusal(validator(idp), idp.token(**changes))
    assert refused.status == status and reason in refused.reason and "\n" not in refused.reason


def test_a_token_expired_within_the_leeway_still_passes() -> None:
    import time

    idp = IdentityProvider()
    assert validator(idp).validate(idp.token(exp=int(time.time()) - 20)).object_id == USER_OID


def test_an_allowed_tenant_signs_in() -> None:
    idp = IdentityProvider()
    identity = validator(idp, allowed_tenants=(OTHER_TENANT,)).validate(idp.token(tid=OTHER_TENANT))
    assert identity.tenant_id == OTHER_TENANT


def test_a_multi_tenant_authority_checks_each_token_against_its_own_tenant() -> None:
    idp = IdentityProvider(tenant="organizations")
    real = idp.documents

    def documents() -> dict[str, dict[str, Any]]:  # as Entra's organizations metadata says it
        found = real()
        found[idp.metadata_url]["issuer"] = f"{idp.authority}/{{tenantid}}/v2.0"
        return found

    idp.documents = documents  # type: ignore[method-assign]
    check = validator(idp, tenant_id="organizations", allowed_tenants=(TENANT, OTHER_TENANT))
    assert check.validate(idp.token(tid=OTHER_TENANT)).tenant_id == OTHER_TENANT
    forged = idp.token(tid=OTHER_TENANT, iss=f"{idp.authority}/{TENANT}/v2.0")  # another tenant's issuer
    assert "issuer" in refusal(check, forged).reason
    assert refusal(check, idp.token(tid="f00dcafe-0000-0000-0000-000000000000")).status == 403


def test_tampered_unsigned_hmac_and_foreign_tokens_are_refused() -> None:
    idp = IdentityProvider()
    check = validator(idp)
    assert "signature" in refusal(check, tampered(idp.token(), oid="someone-else")).reason
    assert "'none'" in refusal(check, unsigned(idp.claims())).reason
    # HS256 "signed" with the public key (the classic confusion attack): refused before any key is used
    public = idp.keys[0].jwk()["n"]
    assert "'HS256'" in refusal(check, jwt.encode(idp.claims(), public, algorithm="HS256")).reason
    stranger = SigningKey(kid=idp.keys[0].kid)  # the right kid, another key
    assert "signature" in refusal(check, idp.token(key=stranger)).reason
    assert refusal(check, "not-a-jwt").status == 401


def test_an_unknown_kid_refetches_the_keys_once_per_floor() -> None:
    idp = IdentityProvider()
    clock = Clock()
    check = validator(idp, clock)
    assert check.validate(idp.token()).object_id == USER_OID
    jwks_fetches = lambda: sum("keys" in url for url in idp.fetched)  # noqa: E731
    assert jwks_fetches() == 1
    check.validate(idp.token())  # cached
    assert jwks_fetches() == 1
    rotated = SigningKey()
    idp.keys.append(rotated)  # published, but fetched less than a floor ago: not yet looked for
    clock.now += 5
    assert "not one of the tenant's keys" in refusal(check, idp.token(key=rotated)).reason
    assert jwks_fetches() == 1
    clock.now += 61
    assert check.validate(idp.token(key=rotated)).object_id == USER_OID  # refetched: the new key is known
    assert jwks_fetches() == 2
    made_up = SigningKey()  # never published: one more fetch, then the floor holds
    clock.now += 61
    refusal(check, idp.token(key=made_up))
    refusal(check, idp.token(key=made_up))
    assert jwks_fetches() == 3


def test_an_unreachable_identity_provider_is_unavailable_until_it_returns() -> None:
    idp = IdentityProvider()
    away = {"up": False}
    calls: list[str] = []

    def fetch(url: str) -> dict[str, Any]:
        calls.append(url)
        if not away["up"]:
            raise OSError("[Errno 111]\nConnection refused")
        return idp.fetch(url)

    clock = Clock()
    check = EntraValidator(EntraConfig(TENANT, CLIENT_ID, idp.authority), fetch=fetch, clock=clock)
    refused = refusal(check, idp.token())
    assert isinstance(refused, Unavailable) and refused.status == 503 and refused.retry_after == 5
    assert "OpenID configuration" in refused.reason and "Connection refused" in refused.reason
    assert "\n" not in refused.reason  # one log line
    clock.now += 2
    again = refusal(check, idp.token())  # not asked again at once: the provider is not hammered
    assert isinstance(again, Unavailable) and again.retry_after == 3 and len(calls) == 1
    clock.now += 3
    away["up"] = True
    assert check.validate(idp.token()).object_id == USER_OID  # back: the next request after the interval


def test_keys_that_cannot_be_fetched_are_unavailable_and_known_keys_still_work() -> None:
    idp = IdentityProvider()
    clock = Clock()
    keys_down = {"down": True}

    def fetch(url: str) -> dict[str, Any]:
        if "keys" in url and keys_down["down"]:
            raise OSError("timed out")
        return idp.fetch(url)

    check = EntraValidator(EntraConfig(TENANT, CLIENT_ID, idp.authority), fetch=fetch, clock=clock)
    refused = refusal(check, idp.token())
    assert isinstance(refused, Unavailable) and "signing keys" in refused.reason
    clock.now += 5
    keys_down["down"] = False
    assert check.validate(idp.token()).object_id == USER_OID
    keys_down["down"] = True  # away again: the key fetched before still checks its tokens
    assert check.validate(idp.token()).object_id == USER_OID
    clock.now += 61
    rotated = SigningKey()
    assert isinstance(refusal(check, idp.token(key=rotated)), Unavailable)  # a new key cannot be looked up now


def test_the_settings_turn_sign_in_on() -> None:
    assert entra_config(Settings()) is None
    config = entra_config(Settings(entra_tenant_id=TENANT, entra_client_id=f"api://{CLIENT_ID}"))
    assert config is not None and config.client_id == CLIENT_ID
    assert config.metadata_url == f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    assert config.api_scope == f"api://{CLIENT_ID}/access_as_user" and config.web_app_client_id == CLIENT_ID
    with pytest.raises(ConfigError, match="entra_client_id"):
        entra_config(Settings(entra_tenant_id=TENANT))
    with pytest.raises(ConfigError, match="entra_allowed_tenants"):
        entra_config(Settings(entra_tenant_id="organizations", entra_client_id=CLIENT_ID))
    multi = Settings(entra_tenant_id="organizations", entra_client_id=CLIENT_ID, entra_allowed_tenants=[TENANT])
    assert entra_config(multi) is not None
    with pytest.raises(ConfigError, match="https://"):
        Settings(entra_authority="login.microsoftonline.com")


def test_the_environment_sets_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel_app.base.config import load_settings

    monkeypatch.setenv("KERNEL_APP_CONFIG", "/nonexistent/config.toml")
    monkeypatch.setenv("KERNEL_APP_ENTRA_TENANT_ID", TENANT)
    monkeypatch.setenv("KERNEL_APP_ENTRA_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("KERNEL_APP_ENTRA_AUTHORITY", "https://login.microsoftonline.us/")
    monkeypatch.setenv("KERNEL_APP_ENTRA_ALLOWED_TENANTS", f"{OTHER_TENANT}, ")
    settings = load_settings()
    config = entra_config(settings)
    assert config is not None and config.authority == "https://login.microsoftonline.us"
    assert config.allowed_tenants == (OTHER_TENANT,)


def test_sign_in_lets_the_server_bind_beyond_loopback() -> None:
    with pytest.raises(ConfigError, match="sign-in"):
        check_bind("0.0.0.0", [])
    check_bind("0.0.0.0", [], signed_in=True)
    check_bind("127.0.0.1", ["short"])  # loopback: as before, any key
    with pytest.raises(ConfigError, match="16 characters"):
        check_bind("0.0.0.0", ["short"], signed_in=True)


# region the middleware


async def whoami(request: Request) -> JSONResponse:
    identity = identity_of(request)
    return JSONResponse({"principal": identity.principal, "name": identity.name})


def guarded(idp: IdentityProvider, keys: list[str], **options: Any) -> httpx.AsyncClient:
    inner = Starlette(routes=[Route("/whoami", whoami), Route("/healthz", whoami)])
    app = Authenticate(inner, keys, validator(idp), **options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_the_middleware_tells_keys_users_and_refusals_apart(caplog: pytest.LogCaptureFixture) -> None:
    idp = IdentityProvider()
    key = "k" * 24
    async with guarded(idp, [key]) as client:
        answer = await client.get("/whoami", headers={"Authorization": f"Bearer {idp.token()}"})
        assert answer.json() == {"principal": f"entra:{TENANT}:{USER_OID}", "name": "Megan Bowen"}
        answer = await client.get("/whoami", headers={"Authorization": f"Bearer {key}"})
        assert answer.json()["principal"] == Identity.for_key(key).principal and key not in answer.text
        assert (await client.get("/healthz")).status_code == 200  # open
        with caplog.at_level(logging.WARNING, "kernel_app.server.auth"):
            none = await client.get("/whoami")
            expired = idp.token(exp=1_000_000)
            late = await client.get("/whoami", headers={"Authorization": f"Bearer {expired}"})
            foreign = await client.get("/whoami", headers={"Authorization": f"Bearer {idp.token(tid=OTHER_TENANT)}"})
            in_query = await client.get("/whoami", params={"access_token": idp.token()})
    for refused in (none, late, in_query):  # the query string counts only where asked for (the hub)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert foreign.status_code == 403 and "tenant" in foreign.json()["error"]["message"]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 4 and all("\n" not in line for line in lines)
    assert any("expired" in line for line in lines) and not any(expired in line for line in lines)


async def test_the_middleware_answers_503_with_retry_after_while_the_provider_is_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    idp = IdentityProvider()

    def away(url: str) -> dict[str, Any]:
        raise OSError("connection refused")

    app = Authenticate(
        Starlette(routes=[Route("/whoami", whoami)]),
        [],
        EntraValidator(EntraConfig(TENANT, CLIENT_ID, idp.authority), fetch=away, clock=Clock()),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        with caplog.at_level(logging.WARNING, "kernel_app.server.auth"):
            answer = await client.get("/whoami", headers={"Authorization": f"Bearer {idp.token()}"})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "www-authenticate" not in answer.headers  # the token is not at fault: the client keeps it
    assert answer.json()["error"]["code"] == "identity_provider_unavailable"
    (line,) = [record.getMessage() for record in caplog.records]
    assert "503" in line and "connection refused" in line


async def test_the_hub_takes_the_token_from_the_query_string() -> None:
    idp = IdentityProvider()
    async with guarded(idp, [], query_token=True) as client:
        answer = await client.get("/whoami", params={"access_token": idp.token()})
        assert answer.json()["principal"] == f"entra:{TENANT}:{USER_OID}"
        assert (await client.get("/whoami", params={"access_token": "x.y.z"})).status_code == 401


async def test_without_keys_or_sign_in_everyone_is_local() -> None:
    app = Authenticate(Starlette(routes=[Route("/whoami", whoami)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        assert (await client.get("/whoami")).json()["principal"] == "local"


def test_a_tenant_given_by_its_domain_name_is_known_by_its_issuer() -> None:
    idp = IdentityProvider(tenant="contoso.onmicrosoft.com")
    real = idp.documents

    def documents() -> dict[str, dict[str, Any]]:  # Entra's metadata for a domain names the tenant by id
        found = real()
        found[idp.metadata_url]["issuer"] = f"{idp.authority}/{TENANT}/v2.0"
        return found

    idp.documents = documents  # type: ignore[method-assign]
    check = validator(idp, tenant_id="contoso.onmicrosoft.com")
    assert check.validate(idp.token(tid=TENANT)).principal == f"entra:{TENANT}:{USER_OID}"
    assert refusal(check, idp.token(tid=OTHER_TENANT)).status == 403
