"""Entra ID sign-in: validate a Microsoft Entra ID v2 access token and say who it names.

:class:`EntraValidator` reads the tenant's OpenID configuration (``{authority}/{tenant}/v2.0/.well-known/
openid-configuration``), fetches its ``jwks_uri`` and keeps the keys by ``kid``; a token signed with a
``kid`` it does not know refetches the set (Entra rotates its keys), but not more often than
``refetch_floor`` seconds, so tokens with made-up ``kid`` values cannot make the server hammer the
identity provider. PyJWT checks the signature (RS256 only: ``alg: none`` and HS* are refused before any
key is looked at), expiry (with a small leeway for clocks), audience (the client id or ``api://<client id>``);
this module checks the issuer (the v2 issuer of the token's own tenant), the tenant (the configured one, or
one of ``entra_allowed_tenants``), and the scope (``scp`` holding the configured scope, or any app role).

A refusal is :class:`Refused`: 401 for a token that proves nothing (absent, malformed, bad signature,
expired, another audience or issuer), 403 for a valid token that may not call (another tenant, no scope).
Its reason never includes the token. An identity provider that cannot be reached (its OpenID configuration
or its keys) is :class:`Unavailable`, a 503 with ``retry_after``: the caller's token may be fine, so it is
no 401 (a client would drop a good token); the fetch is tried again at most every ``retry_after`` seconds,
so the server recovers by itself when the provider is back, without hammering it meanwhile. Keys already
fetched keep validating their tokens during an outage.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from kernel_app.base.errors import ConfigError
from kernel_app.base.identity import Identity

if TYPE_CHECKING:
    from kernel_app.base.config import Settings

ALGORITHMS = ["RS256"]  # what Entra signs access tokens with; never none or HS* (a public key is no secret)
LEEWAY_S = 60.0  # clock difference tolerated on exp / nbf / iat
REFETCH_FLOOR_S = 60.0  # at least this long between two fetches of the key set
RETRY_UNAVAILABLE_S = 5.0  # after a failed fetch, at least this long before the next try (and Retry-After)
FETCH_TIMEOUT_S = 10.0

# Authorities whose metadata serves many tenants (its issuer says {tenantid}): each token's own tenant counts.
MULTI_TENANT = frozenset({"common", "organizations"})

Fetch = Callable[[str], dict[str, Any]]


class Refused(Exception):
    """A request whose token does not let it in: ``status`` 401, 403 (or 503: :class:`Unavailable`) and a
    one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Unavailable(Refused):
    """The identity provider could not be read, so no token can be checked now: 503, try again in
    ``retry_after`` whole seconds (at least 1)."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(503, reason)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True)
class EntraConfig:
    tenant_id: str
    client_id: str
    authority: str = "https://login.microsoftonline.com"
    allowed_tenants: tuple[str, ...] = ()
    scope: str = "access_as_user"
    web_client_id: str = ""  # the web app's (SPA) registration; "" means the API's own

    @property
    def authority_url(self) -> str:
        """What MSAL signs users in at (chat-copilot's ``aadAuthority``)."""
        return f"{self.authority}/{self.tenant_id}"

    @property
    def metadata_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/v2.0/.well-known/openid-configuration"

    @property
    def api_scope(self) -> str:
        """The scope the web app asks MSAL for (chat-copilot's ``aadApiScope``)."""
        return f"api://{self.client_id}/{self.scope}"

    @property
    def web_app_client_id(self) -> str:
        """The client id MSAL signs the web app's users in with (chat-copilot's ``aadClientId``)."""
        return self.web_client_id or self.client_id

    @property
    def audiences(self) -> list[str]:
        return [self.client_id, f"api://{self.client_id}"]


def entra_config(settings: Settings) -> EntraConfig | None:
    """The sign-in configuration from the settings; None when sign-in is off (neither id set)."""
    tenant, client = settings.entra_tenant_id, settings.entra_client_id
    if not tenant and not client:
        return None
    if not tenant or not client:
        missing = "entra_tenant_id (KERNEL_APP_ENTRA_TENANT_ID)" if not tenant else "entra_client_id"
        raise ConfigError(f"Entra ID sign-in needs both a tenant and a client id: set {missing} too")
    client = client.removeprefix("api://").rstrip("/")  # the API's App ID URI is accepted for the id
    if tenant.lower() in MULTI_TENANT and not settings.entra_allowed_tenants:
        raise ConfigError(
            f"entra_tenant_id {tenant!r} would let in any organisation's users: list the tenants in "
            "entra_allowed_tenants (KERNEL_APP_ENTRA_ALLOWED_TENANTS), or give your own tenant's id"
        )
    return EntraConfig(
        tenant_id=tenant,
        client_id=client,
        authority=settings.entra_authority,
        allowed_tenants=tuple(settings.entra_allowed_tenants),
        scope=settings.entra_scope,
        web_client_id=settings.entra_web_client_id or "",
    )


def fetch_json(url: str) -> dict[str, Any]:
    """GET ``url`` as JSON (the OpenID configuration and the key set: both small and public)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # a configured URL
        return json.loads(response.read())


class EntraValidator:
    """Validates bearer tokens for one API app (thread-safe: the server calls it from worker threads)."""

    def __init__(
        self,
        config: EntraConfig,
        *,
        fetch: Fetch = fetch_json,
        refetch_floor: float = REFETCH_FLOOR_S,
        retry_unavailable: float = RETRY_UNAVAILABLE_S,
        leeway: float = LEEWAY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._fetch = fetch
        self._floor = refetch_floor
        self._retry = retry_unavailable
        self._leeway = leeway
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._meta_failed_at: float | None = None
        self._keys_failed_at: float | None = None

    def validate(self, token: str) -> Identity:
        """The identity ``token`` proves, or :class:`Refused` with the reason."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Refused(401, "the bearer token is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise Refused(401, f"token algorithm {header.get('alg')!r} refused: only RS256 is accepted")
        key = self._key(str(header.get("kid") or ""))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.config.audiences,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused(401, "the token has expired: sign in again") from None
        except jwt.InvalidAudienceError:
            raise Refused(401, f"the token is for another API: its audience is not {self.config.client_id}") from None
        except jwt.InvalidSignatureError:
            raise Refused(401, "the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as error:
            raise Refused(401, f"the token has no {error.claim!r} claim: not an Entra ID v2 access token") from None
        except jwt.InvalidTokenError as error:
            raise Refused(401, f"invalid token: {type(error).__name__}") from None
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        tenant = str(claims["tid"])
        issuer = str(self._meta()["issuer"])
        if claims["iss"] != _issuer_of(issuer, tenant):
            raise Refused(401, "the token's issuer is not the Entra ID v2 issuer of its tenant")
        # The configured tenant may be a domain name; the metadata's issuer names it by id.
        allowed = {self.config.tenant_id, *self.config.allowed_tenants, _home_tenant(issuer)}
        if tenant not in allowed:
            raise Refused(403, f"tenant {tenant} may not sign in here: add it to entra_allowed_tenants")
        scopes = str(claims.get("scp") or "").split()
        roles = claims.get("roles") or []
        if self.config.scope not in scopes and not roles:
            raise Refused(403, f"the token lacks the scope {self.config.scope!r} (and has no app role)")
        name = str(claims.get("name") or claims.get("preferred_username") or "")
        return Identity.for_user(tenant, str(claims["oid"]), name)

    def _meta(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                now = self._clock()
                self._wait_out(self._meta_failed_at, now, "OpenID configuration")
                try:
                    metadata = self._fetch_or_fail(self.config.metadata_url, "OpenID configuration")
                except Unavailable:
                    self._meta_failed_at = now  # no new try before the retry interval
                    raise
                if not metadata.get("jwks_uri") or not metadata.get("issuer"):
                    self._meta_failed_at = now  # a provider answering nonsense is no better than one away
                    raise Unavailable(
                        "the identity provider's OpenID configuration has no jwks_uri or issuer: check "
                        "entra_authority and entra_tenant_id",
                        self._retry,
                    )
                self._meta_failed_at = None
                self._metadata = metadata
            return self._metadata

    def _key(self, kid: str) -> jwt.PyJWK:
        if not kid:
            raise Refused(401, "the token names no signing key (kid)")
        metadata = self._meta()
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            now = self._clock()
            self._wait_out(self._keys_failed_at, now, "signing keys")
            if self._fetched_at is not None and now - self._fetched_at < self._floor:
                raise Refused(401, "the token's signing key is not one of the tenant's keys")
            try:
                keys = self._fetch_or_fail(str(metadata["jwks_uri"]), "signing keys")
            except Unavailable:
                self._keys_failed_at = now  # no new try before the retry interval
                raise
            self._keys_failed_at = None
            self._fetched_at = now
            self._keys = _keys_by_kid(keys)
            key = self._keys.get(kid)
            if key is None:
                raise Refused(401, "the token's signing key is not one of the tenant's keys")
            return key

    def _wait_out(self, failed_at: float | None, now: float, what: str) -> None:
        """:class:`Unavailable` while the last failed fetch of ``what`` is more recent than the retry interval."""
        if failed_at is not None and (left := failed_at + self._retry - now) > 0:
            raise Unavailable(f"the identity provider's {what} could not be read: trying again shortly", left)

    def _fetch_or_fail(self, url: str, what: str) -> dict[str, Any]:
        try:
            return self._fetch(url)
        except Exception as error:  # the identity provider away: nobody can be let in, say why in the log
            said = " ".join(str(error).split()) or type(error).__name__  # one line in the log
            raise Unavailable(f"could not read the identity provider's {what} at {url}: {said}", self._retry) from None


def _issuer_of(issuer: str, tenant: str) -> str:
    """The v2 issuer of ``tenant``, from the metadata's ``issuer``: ``{tenantid}`` in it (a multi-tenant
    authority such as ``organizations``) or the home tenant's id (``{authority}/{tid}/v2.0``) replaced."""
    if "{tenantid}" in issuer:
        return issuer.replace("{tenantid}", tenant)
    home = _home_tenant(issuer)
    return issuer.replace(f"/{home}/", f"/{tenant}/", 1) if home else issuer


def _home_tenant(issuer: str) -> str:
    """The tenant id in a single-tenant issuer (``https://login.microsoftonline.com/{tid}/v2.0``), else ""."""
    parts = issuer.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 5 and "{" not in parts[-2] else ""


def _keys_by_kid(jwks: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS by ``kid`` (keys that are not RSA signing keys are skipped)."""
    found: dict[str, jwt.PyJWK] = {}
    for entry in jwks.get("keys") or []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        try:
            found[str(entry["kid"])] = jwt.PyJWK(entry, algorithm="RS256")
        except (KeyError, jwt.PyJWKError):
            continue
    return found
