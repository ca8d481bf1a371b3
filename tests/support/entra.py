"""A stand-in for Entra ID: an RSA key the test generates, its JWKS and OpenID configuration, signed tokens.

:class:`IdentityProvider` answers the two documents from a dict (:meth:`fetch`, for the validator's unit
tests: no socket) or over HTTP on 127.0.0.1 (:meth:`serving`, for a real server's tests: e2e). Tokens are
Entra ID v2 access tokens in shape: ``iss`` ``{authority}/{tid}/v2.0``, ``aud``, ``tid``, ``oid``, ``scp``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
CLIENT_ID = "6a3c9a1e-0b8f-4c55-9d1e-2f4a7b0c1d2e"
USER_OID = "00000000-0000-0000-66f3-3332eca7ea81"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    """An RSA key pair with a ``kid``, as one entry of a JWKS."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "n": _b64(numbers.n), "e": _b64(numbers.e)}


class IdentityProvider:
    """One tenant's OpenID configuration and keys; ``keys`` may be changed (rotation), ``fetched`` counts."""

    def __init__(self, authority: str = "https://login.example.test", tenant: str = TENANT) -> None:
        self.authority = authority
        self.tenant = tenant
        self.keys = [SigningKey()]
        self.fetched: list[str] = []
        self._port = 0  # the port it serves on, once it has
        self._server: ThreadingHTTPServer | None = None

    @property
    def metadata_url(self) -> str:
        return f"{self.authority}/{self.tenant}/v2.0/.well-known/openid-configuration"

    def documents(self) -> dict[str, dict[str, Any]]:
        jwks_uri = f"{self.authority}/{self.tenant}/discovery/v2.0/keys"
        metadata = {
            "issuer": f"{self.authority}/{self.tenant}/v2.0",
            "jwks_uri": jwks_uri,
            "authorization_endpoint": f"{self.authority}/{self.tenant}/oauth2/v2.0/authorize",
            "token_endpoint": f"{self.authority}/{self.tenant}/oauth2/v2.0/token",
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        return {self.metadata_url: metadata, jwks_uri: {"keys": [key.jwk() for key in self.keys]}}

    def fetch(self, url: str) -> dict[str, Any]:
        """The validator's ``fetch``: the document at ``url``, as the HTTP server would answer it."""
        self.fetched.append(url)
        found = self.documents().get(url)
        if found is None:
            raise OSError(f"404 for {url}")
        return found

    def claims(self, **changes: Any) -> dict[str, Any]:
        """A valid access token's claims for the test user; ``changes`` replace them (None removes one)."""
        tenant = changes.pop("tid", self.tenant)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"{self.authority}/{tenant}/v2.0",
            "aud": CLIENT_ID,
            "tid": tenant,
            "oid": USER_OID,
            "name": "Megan Bowen",
            "preferred_username": "megan@contoso.example",
            "scp": "access_as_user",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "ver": "2.0",
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, key: SigningKey | None = None, **changes: Any) -> str:
        key = key or self.keys[0]
        return jwt.encode(self.claims(**changes), key.private, algorithm="RS256", headers={"kid": key.kid})

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Answer the documents over HTTP on 127.0.0.1; the authority becomes that server's URL (yielded).
        Inside, :meth:`stop` and :meth:`start` take the provider away and bring it back on the same port."""
        self.start()
        try:
            yield self.authority
        finally:
            self.stop()

    def start(self) -> str:
        """Serve on 127.0.0.1: a free port the first time, the same one again after :meth:`stop`."""
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = f"{provider.authority}{self.path}"
                provider.fetched.append(url)
                found = provider.documents().get(url)
                body = json.dumps(found or {"error": "not_found"}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)  # reuses the address (TIME_WAIT)
        self._port = server.server_address[1]
        self.authority = f"http://127.0.0.1:{self._port}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self.authority

    def stop(self) -> None:
        """Stop answering: connections to the port are refused until :meth:`start`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def unsigned(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token (no signature), as an attacker would send one."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def tampered(token: str, **changes: Any) -> str:
    """``token`` with its claims changed and its signature kept (so it no longer verifies)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"
