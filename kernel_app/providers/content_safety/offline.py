"""The built-in screen: no network, no model. Prompt-injection markers, hidden text, and a short list of
clearly harmful requests.

Kept narrow on purpose, so that business text passes: a pattern needs the words an injection uses
together ("ignore the previous instructions", not "ignore" and "instructions" apart; "you are now ..."
only when a new role or order follows), a markdown "### Instructions" heading passes while the
instruction-tuning marker "### Instruction:" does not, and zero-width characters are flagged when they
hide inside words, not when one slipped in from a web page. The shipped plugins' prompts and eval inputs
are tested against it (tests/providers/content_safety).

Injection markers and hidden text are screened on what comes in (input, documents, retrieved records and
function results); the harmful list on everything, answers included.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from kernel_app.providers.content_safety.base import Screen
from kernel_app.providers.content_safety.verdict import CLEAN, Stage, Verdict

SNIPPET_CHARS = 60

_QUALIFIER = (
    r"(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial|system|developer|existing|old)"
)
_RULES = r"(?:instructions?|prompts?|rules|directions|directives|guidelines|commands|context|messages|constraints)"
_FILLER = r"(?:(?:all|any|every|of|the|your|my|these|those)\s+){0,3}"

_INJECTION: list[tuple[str, re.Pattern[str]]] = [
    (
        "an order to ignore earlier instructions",
        re.compile(rf"\b(?:ignore|disregard|forget|override|bypass|abandon)\s+{_FILLER}{_QUALIFIER}\s+{_RULES}"),
    ),
    (
        "an order to ignore earlier instructions",
        re.compile(
            r"\b(?:ignore|disregard|forget)\s+(?:all|everything)\s+"
            r"(?:(?:you\s+(?:were|have\s+been|'ve\s+been)\s+told)|above|before|previously|so\s+far)"
        ),
    ),
    (
        "an order to drop the assistant's rules",
        re.compile(
            r"\b(?:ignore|disregard|bypass)\s+(?:all\s+)?(?:of\s+)?your\s+(?:instructions|programming|guardrails|safety)"
        ),
    ),
    (
        "a new role for the assistant",
        re.compile(
            r"\byou\s+are\s+now\s+(?:an?\s+|my\s+|the\s+)?(?:dan\b|unrestricted|unfiltered|uncensored|jailbroken|evil"
            r"|in\s+(?:developer|god|admin|dan|jailbreak)\s+mode|free\s+(?:from|of)\s+|no\s+longer\s+)"
        ),
    ),
    (
        "a new role for the assistant",
        # "You are now a pirate. Respond only in..." ("you are now a member. Reply STOP to..." passes)
        re.compile(
            r"\byou\s+are\s+now\s+[^.\n]{0,60}[.,;:!]?\s*(?:you\s+(?:must|will|shall)\s+)?"
            r"(?:(?:always|only)\s+(?:respond|answer|reply|speak|talk)\b"
            r"|(?:respond|answer|reply|speak|talk|behave|act)\s+(?:only\s+|always\s+)?(?:as|like|only|in\s+the\s+(?:voice|style))\b)"
        ),
    ),
    (
        "a new role for the assistant",
        re.compile(
            r"\b(?:from\s+now\s+on|henceforth)\s*,?\s+you\s+(?:are|will\s+(?:act|behave|respond|answer|ignore))\b"
        ),
    ),
    (
        "a new role for the assistant",
        re.compile(
            r"\b(?:act|pretend|roleplay)\s+(?:as|to\s+be)\s+(?:an?\s+)?(?:unrestricted|uncensored|unfiltered|jailbroken|dan\b|evil\s+ai)"
        ),
    ),
    (
        "a request for the system prompt",
        re.compile(
            r"\b(?:reveal|print|show|output|repeat|display|leak|disclose|dump|tell\s+me|give\s+me|what\s+is|what's)\s+"
            r"(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|original\s+|hidden\s+|initial\s+|secret\s+|exact\s+)?"
            r"(?:system|developer|hidden|initial|original)\s+(?:prompt|instructions|message)"
        ),
    ),
    (
        "a replacement system prompt",
        re.compile(r"(?:^|\n)\s*(?:new|updated|real|actual|override)\s+system\s+(?:prompt|instructions|message)\s*:"),
    ),
    (
        "a chat-template role marker",
        re.compile(
            r"<\|\s*(?:im_start|im_end|system|user|assistant|start_header_id|end_header_id|eot_id|endoftext"
            r"|begin_of_text)\s*\|>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>"
        ),
    ),
    ("an instruction-tuning marker", re.compile(r"(?:^|\n)\s*#{2,4}\s*(?:instruction|system|system\s+prompt)\s*:")),
    # Other languages: the same order to drop the earlier instructions.
    (
        "an order to ignore earlier instructions (French)",
        re.compile(
            r"\b(?:ignore[rz]?|oublie[rz]?)\s+(?:toutes\s+)?(?:les\s+|tes\s+|vos\s+)?(?:instructions|consignes)\s+"
            r"(?:pr[ée]c[ée]dentes|ant[ée]rieures|ci-dessus)"
        ),
    ),
    (
        "an order to ignore earlier instructions (Spanish)",
        re.compile(
            r"\b(?:ignora|ignorar|ignore|olvida|olvidar)\s+(?:todas\s+)?(?:las\s+|tus\s+)?instrucciones\s+"
            r"(?:anteriores|previas)"
        ),
    ),
    (
        "an order to ignore earlier instructions (German)",
        re.compile(
            r"\b(?:ignorier(?:e|en)?|vergiss|vergessen\s+sie)\s+(?:alle\s+)?(?:deine\s+|ihre\s+|die\s+)?"
            r"(?:vorherigen|bisherigen|obigen|vorangegangenen|fr[üu]heren)\s+(?:anweisungen|instruktionen|befehle)"
        ),
    ),
    (
        "an order to ignore earlier instructions (Italian)",
        re.compile(r"\b(?:ignora|dimentica)\s+(?:tutte\s+)?(?:le\s+)?istruzioni\s+(?:precedenti|sopra)"),
    ),
    (
        "an order to ignore earlier instructions (Portuguese)",
        re.compile(r"\b(?:ignore|ignora|esque[çc]a)\s+(?:todas\s+)?(?:as\s+)?instru[çc][õo]es\s+anteriores"),
    ),
    (
        "an order to ignore earlier instructions (Dutch)",
        re.compile(r"\b(?:negeer|vergeet)\s+(?:alle\s+)?(?:vorige|eerdere|voorgaande)\s+instructies"),
    ),
    (
        "an order to ignore earlier instructions (Russian)",
        re.compile(
            r"(?:игнорируй|игнорируйте|забудь|забудьте)\s+(?:все\s+)?(?:предыдущие|прежние)\s+(?:инструкции|указания)"
        ),
    ),
    (
        "an order to ignore earlier instructions (Chinese)",
        re.compile(
            r"(?:忽略|无视|忽视|忘记)(?:掉)?(?:你)?(?:之前|以上|上面|先前|前面|所有|全部)+(?:的)?(?:所有)?(?:指令|指示|提示|规则)"
        ),
    ),
    (
        "an order to ignore earlier instructions (Japanese)",
        re.compile(r"(?:以前|前|上記|これまで)の(?:すべての)?(?:指示|命令)を(?:無視|忘れ)"),
    ),
    (
        "an order to ignore earlier instructions (Korean)",
        re.compile(r"이전\s*(?:의\s*)?(?:모든\s*)?지시(?:를|사항을)?\s*무시"),
    ),
]

_HARMFUL: list[tuple[str, re.Pattern[str]]] = [
    (
        "instructions for a weapon",
        re.compile(
            r"\b(?:how\s+(?:do\s+i|to|can\s+i|would\s+i)|instructions\s+(?:for|to)|steps\s+to|help\s+me|teach\s+me"
            r"|recipe\s+for|guide\s+to)\b.{0,40}?\b(?:make|build|assemble|synthesi[sz]e|produce|manufacture|weaponi[sz]e)\b"
            r".{0,30}?\b(?:pipe\s+bomb|(?<!bath\s)(?<!seed\s)bomb(?!-)|explosive\s+device|ied|nerve\s+agent|sarin|vx\s+gas|ricin|anthrax"
            r"|mustard\s+gas|chemical\s+weapon|bioweapon|biological\s+weapon|dirty\s+bomb)s?\b"
        ),
    ),
    (
        "a request for malware",
        re.compile(
            r"\b(?:write|create|build|code|develop|make)\b.{0,30}?\b(?:ransomware|keylogger|credential\s+stealer"
            r"|computer\s+virus|self-spreading\s+worm|botnet)\b(?!\s+(?:detection|protection|prevention|defen[cs]e"
            r"|response|incident|policy|awareness|training|scanner|removal|attack))"
        ),
    ),
    (
        "sexual content involving minors",
        re.compile(
            r"\b(?:child|minor|underage)\s*(?:porn\w*|sexual\s+(?:content|images|videos|photos))"
            r"|\b(?:porn\w*|nude|explicit)\s+(?:images?|pictures?|photos?|videos?)\s+of\s+(?:a\s+)?"
            r"(?:child|children|minors?|kids?|underage)"
        ),
    ),
]

# Zero-width characters and the word joiner (U+200C/U+200D are left alone: Persian, Indic scripts and
# emoji sequences need them), bidi embeddings, overrides and isolates (the "Trojan Source" trick), and
# Unicode tag characters, which render as nothing and can spell out a whole hidden sentence.
_ZERO_WIDTH = re.compile("[\u200b\u2060-\u2064\ufeff\u180e]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_TAGS = re.compile("[\U000e0020-\U000e007e]+")
_FLAG_TAGS = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")  # subdivision flags (England...)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")


class OfflineScreen(Screen):
    name = "offline"

    async def screen(self, text: str, stage: Stage) -> Verdict:
        return check(text, stage)


def check(text: str, stage: Stage) -> Verdict:
    """The offline screen's verdict (synchronous: it does no I/O)."""
    if not text:
        return CLEAN
    incoming = stage != "output"
    if incoming:
        hidden = _hidden_text(text)
        if hidden:
            return Verdict(True, "hidden_text", hidden)
    normal = normalize(text)
    if incoming:
        found = _first(_INJECTION, normal)
        if found:
            return Verdict(True, "prompt_injection", found)
        encoded = _encoded_injection(text)
        if encoded:
            return Verdict(True, "prompt_injection", encoded)
    found = _first(_HARMFUL, normal, quote=False)
    if found:
        return Verdict(True, "harmful", found)
    return CLEAN


def normalize(text: str) -> str:
    """Compatibility forms folded (full-width letters, ligatures), invisible characters dropped, lower case,
    runs of white space as one space."""
    folded = unicodedata.normalize("NFKC", text)
    folded = _ZERO_WIDTH.sub("", _BIDI.sub("", _TAGS.sub("", folded))).replace("\u200c", "").replace("\u200d", "")
    folded = folded.casefold().replace("\u2019", "'")
    return re.sub(r"[ \t\r\f\v]+", " ", folded)


def _first(patterns: list[tuple[str, re.Pattern[str]]], normal: str, *, quote: bool = True) -> str:
    """What the first matching pattern found; ``quote``: with the words it matched (never for harmful text,
    which a refusal must not repeat)."""
    for what, pattern in patterns:
        match = pattern.search(normal)
        if match:
            return f'{what}: "{_snippet(match.group(0))}"' if quote else what
    return ""


def _hidden_text(text: str) -> str:
    without_flags = _FLAG_TAGS.sub("", text)
    tags = _TAGS.search(without_flags)
    if tags:
        spelled = "".join(chr(ord(c) - 0xE0000) for c in tags.group(0))
        return f'invisible Unicode tag characters spelling "{_snippet(spelled)}"'
    bidi = _BIDI.search(text)
    if bidi:
        return f"a bidirectional control character (U+{ord(bidi.group(0)):04X}) that reorders what is shown"
    marks = list(_ZERO_WIDTH.finditer(text))
    inside_words = [m for m in marks if _between_letters(text, m.start(), m.end())]
    if inside_words or len(marks) >= 3:
        mark = (inside_words or marks)[0].group(0)
        return f"{len(marks)} zero-width character(s) (U+{ord(mark):04X}) hidden in the text"
    return ""


def _between_letters(text: str, start: int, end: int) -> bool:
    return start > 0 and end < len(text) and text[start - 1].isalpha() and text[end].isalpha()


def _encoded_injection(text: str) -> str:
    """An injection hidden in base64: each long base64 run that decodes to text is screened too."""
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if not decoded.isprintable() and not all(c.isprintable() or c.isspace() for c in decoded):
            continue
        found = _first(_INJECTION, normalize(decoded))
        if found:
            return f"base64-encoded {found}"
    return ""


def _snippet(text: str) -> str:
    shown = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return shown if len(shown) <= SNIPPET_CHARS else shown[: SNIPPET_CHARS - 1] + "…"
