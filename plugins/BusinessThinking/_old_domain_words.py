"""The words that say which business a text is about ("bakery"; "pizza", "shop", "college"), found in the
text itself, and a check for a rewritten row that still uses them.

The 1.5B asked to rewrite a pizza shop's SWOT for a cleaning service kept "College students often
frequent pizza shops": naming the old business's words to avoid, and re-asking for a row that still
has them, is what moved it. The words are those that recur in the text's rows but are no business's
common vocabulary (customers, market, competition...) nor words of the new domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Words any SWOT uses whatever the business: function words, the verbs of its reasons and business
# vocabulary. A word not in here that recurs across rows is taken for the business's own.
_COMMON = """
    a about above across after again against all also an and any are area areas as at be because been
    being between both but by can could do does each either for from further had has have having help
    helps her here his how if in into is it its itself just less like many may might more most much must
    need needs new no nor not of off often on once one only or other others our out over own per same
    several she should since so some such than that the their them then there these they this those
    through to too under until up upon very was way ways we well were what when where which while who
    whom why will with within without would you your
    able access adapt affect affects attract attracts based become better big bring build building
    change changes changing choose come create creating customer customers deal demand different
    difficult easier easy efficient efficiently ensure expand expanding experience face faces find
    focus get give go good grow growing growth high higher improve improving include including increase
    increased keep lack lacking large larger lead leading limited lose low lower maintain make makes making
    meet offer
    offering offers overall partner potential provide providing range reach reduce reduced rely remain
    run see sense serve set share similar small stand steady strong support take team unique use used
    using want wide wider work working
    advantage advantages audience brand business businesses challenge challenges channel channels
    community companies company competition competitive competitor competitors cost costs downturn
    downturns economic economy event events expertise flexibility global globalization income industry
    local loyal loyalty market marketing markets media model needs online operations opportunities
    opportunity option options organization people platform platforms point points preferences presence
    price prices pricing product products profit profits quality referral referrals reputation revenue
    risk risks sales service services social staff staffing strength strengths supply team technology
    threat threats time trend trends value weakness weaknesses word
    matters matter reason reasons why
    """
COMMON_WORDS = frozenset(_COMMON.split())
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]")


def stem(word: str) -> str:
    """A word without its plural ending, so that "pizzas" and "bakeries" match "pizza" and "bakery"."""
    word = word.lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def words_of(text: str) -> set[str]:
    return {stem(word) for word in _WORD.findall(text.lower())}


def old_domain_words(rows: Iterable[str], new_domain: str, most: int = 5) -> list[str]:
    """The old business's words: in at least two of ``rows`` (one text per row), at least a third as many
    rows as the most frequent such word, not common, not in ``new_domain``; the most frequent first."""
    avoid = {stem(word) for word in COMMON_WORDS} | words_of(new_domain)
    counts: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for row in rows:
        for word in words_of(row):
            if len(word) >= 4 and word not in avoid:
                counts[word] = counts.get(word, 0) + 1
                first_seen.setdefault(word, len(first_seen))
    recurring = {word: count for word, count in counts.items() if count >= 2}
    if not recurring:
        return []
    least = max(recurring.values()) / 4
    ranked = sorted((w for w, c in recurring.items() if c >= least), key=lambda w: (-recurring[w], first_seen[w]))
    return ranked[:most]


def old_words_in(text: str, old_words: Iterable[str]) -> list[str]:
    """Which of ``old_words`` ``text`` still uses (any case, singular or plural)."""
    present = words_of(text)
    return [word for word in old_words if word in present]
