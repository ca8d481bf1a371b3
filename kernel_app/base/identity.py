"""Who is calling: one :class:`Identity` per request, the principal that per-user data is scoped by."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

IdentityKind = Literal["entra", "key", "local"]


@dataclass(frozen=True)
class Identity:
    """The caller of one request.

    ``principal`` is stable and unique, the key later work scopes data by: ``entra:<tenant>:<object id>``
    for a signed-in user, ``key:<hash>`` for an API-key caller (one identity per key, the key never kept),
    ``local`` for key-less use on loopback (everyone on this machine is one user, as before sign-in).
    """

    kind: IdentityKind
    principal: str
    object_id: str | None = None  # Entra's ``oid``: the user's id, the same in every app of the tenant
    tenant_id: str | None = None  # Entra's ``tid``
    name: str = ""  # for display only (``name`` or ``preferred_username`` of the token)

    @staticmethod
    def local() -> Identity:
        return Identity(kind="local", principal="local", name="Local user")

    @staticmethod
    def for_key(key: str | bytes) -> Identity:
        raw = key.encode() if isinstance(key, str) else key
        digest = hashlib.sha256(raw).hexdigest()[:16]  # enough to tell keys apart; cannot give the key back
        return Identity(kind="key", principal=f"key:{digest}", name=f"API key {digest[:8]}")

    @staticmethod
    def for_user(tenant_id: str, object_id: str, name: str = "") -> Identity:
        return Identity(
            kind="entra",
            principal=f"entra:{tenant_id}:{object_id}",
            object_id=object_id,
            tenant_id=tenant_id,
            name=name or object_id,
        )
