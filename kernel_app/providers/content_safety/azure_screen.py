"""Azure AI Content Safety as the content screen: ``text:analyze`` (hate, sexual, violence, self-harm at
four severity levels) and Prompt Shields ``text:shieldPrompt`` (attacks in a user's prompt or in
documents), over its REST API with httpx: the SDK would add a dependency for two POSTs.

Configured by ``AZURE_CONTENT_SAFETY_ENDPOINT`` and ``AZURE_CONTENT_SAFETY_KEY``; without a key it signs
in with Microsoft Entra ID (azure-identity's ``DefaultAzureCredential``: environment, managed identity,
Azure CLI...), scope ``https://cognitiveservices.azure.com/.default``. A severity of
``AZURE_CONTENT_SAFETY_THRESHOLD`` (default 4, "medium") or more blocks. The offline screen's
hidden-text check runs first (Prompt Shields reads the text as shown).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from kernel_app.base.errors import ConfigError
from kernel_app.providers.content_safety.base import Screen
from kernel_app.providers.content_safety.offline import check
from kernel_app.providers.content_safety.verdict import CLEAN, ScreenError, Stage, Verdict

API_VERSION = "2024-09-01"
SCOPE = "https://cognitiveservices.azure.com/.default"
MAX_CHARS = 10_000  # text:analyze's limit per request; Prompt Shields' for a prompt and its documents together
DEFAULT_THRESHOLD = 4


class AzureContentSafetyScreen(Screen):
    name = "azure"

    def __init__(
        self,
        endpoint: str,
        *,
        key: str | None = None,
        credential: Any = None,
        threshold: int = DEFAULT_THRESHOLD,
        client: Any = None,
        api_version: str = API_VERSION,
    ) -> None:
        """``credential``: an async azure-identity credential, used when there is no ``key``."""
        import httpx

        self.endpoint = endpoint.rstrip("/")
        self.key = key
        self.credential = credential
        self.threshold = threshold
        self.api_version = api_version
        self.client = client or httpx.AsyncClient(timeout=30.0)

    async def screen(self, text: str, stage: Stage) -> Verdict:
        local = check(text, stage)
        if local.category == "hidden_text" or not text.strip():
            return local
        for start in range(0, len(text), MAX_CHARS):
            part = text[start : start + MAX_CHARS]
            if stage != "output":
                verdict = await self._shield(part, stage)
                if verdict.flagged:
                    return verdict
            verdict = await self._analyze(part)
            if verdict.flagged:
                return verdict
        return CLEAN

    async def screen_many(self, texts: Sequence[str], stage: Stage) -> list[Verdict]:
        return [await self.screen(text, stage) for text in texts]

    async def _shield(self, text: str, stage: Stage) -> Verdict:
        body: dict[str, Any] = {"userPrompt": text, "documents": []} if stage == "input" else {"documents": [text]}
        data = await self._post("text:shieldPrompt", body)
        if stage == "input" and (data.get("userPromptAnalysis") or {}).get("attackDetected"):
            return Verdict(True, "prompt_injection", "Azure Prompt Shields detected an attack in the prompt")
        if any(item.get("attackDetected") for item in data.get("documentsAnalysis") or []):
            return Verdict(True, "prompt_injection", "Azure Prompt Shields detected an attack in the document")
        return CLEAN

    async def _analyze(self, text: str) -> Verdict:
        data = await self._post("text:analyze", {"text": text, "outputType": "FourSeverityLevels"})
        over = [
            (str(item.get("category")), int(item.get("severity") or 0))
            for item in data.get("categoriesAnalysis") or []
            if int(item.get("severity") or 0) >= self.threshold
        ]
        if data.get("blocklistsMatch"):
            names = ", ".join(str(m.get("blocklistName")) for m in data["blocklistsMatch"])
            return Verdict(True, "blocklist", f"Azure AI Content Safety matched blocklist {names}")
        if not over:
            return CLEAN
        category = max(over, key=lambda item: item[1])[0]
        shown = ", ".join(f"{c} severity {s}" for c, s in over)
        return Verdict(True, category.lower(), f"Azure AI Content Safety: {shown} (threshold {self.threshold})")

    async def _post(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.endpoint}/contentsafety/{operation}"
        try:
            response = await self.client.post(
                url, params={"api-version": self.api_version}, json=body, headers=await self._headers()
            )
        except Exception as error:
            raise ScreenError(f"content safety (azure): {operation} failed: {type(error).__name__}: {error}") from error
        if response.status_code != 200:
            try:
                message = str(response.json().get("error", {}).get("message", ""))
            except ValueError:
                message = response.text[:200]
            status = response.status_code
            hint = " (check AZURE_CONTENT_SAFETY_KEY or the Entra sign-in)" if status in (401, 403) else ""
            raise ScreenError(f"content safety (azure): {operation} answered HTTP {status}: {message}{hint}")
        return response.json()

    async def _headers(self) -> dict[str, str]:
        if self.key:
            return {"Ocp-Apim-Subscription-Key": self.key}
        if self.credential is None:
            from azure.identity.aio import DefaultAzureCredential

            self.credential = DefaultAzureCredential()
        token = await self.credential.get_token(SCOPE)
        return {"Authorization": f"Bearer {token.token}"}

    async def aclose(self) -> None:
        await self.client.aclose()


def create_azure_screen(settings: Any) -> AzureContentSafetyScreen:
    endpoint = os.environ.get("AZURE_CONTENT_SAFETY_ENDPOINT")
    if not endpoint:
        raise ConfigError(
            "content_safety 'azure' needs AZURE_CONTENT_SAFETY_ENDPOINT: export "
            "AZURE_CONTENT_SAFETY_ENDPOINT=https://NAME.cognitiveservices.azure.com (and AZURE_CONTENT_SAFETY_KEY, "
            "or sign in with Entra ID)"
        )
    raw = os.environ.get("AZURE_CONTENT_SAFETY_THRESHOLD", str(DEFAULT_THRESHOLD)).strip()
    if raw not in ("2", "4", "6"):
        raise ConfigError(f"AZURE_CONTENT_SAFETY_THRESHOLD: expected 2, 4 or 6 (a severity level), got {raw!r}")
    key = os.environ.get("AZURE_CONTENT_SAFETY_KEY") or None
    return AzureContentSafetyScreen(endpoint, key=key, threshold=int(raw))
