"""The course's memory flow ("save the gravy") on the real embedded embedder (all-MiniLM-L6-v2 int8).

The 16 answers of a pizza shop's SWOT interview go into collection ``SWOT`` as one record each, with
ids strength-0..3, weakness-0..3, opportunity-0..3 and threat-0..3, each text prefixed by what its
category means for the business. Asking how to make more money must bring an opportunity first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kernel_app.providers.embedder.generator")

from memories import MemoryStore
from memories.embedders import default_embedder

# What each SWOT category means for the business, said before the question and answer.
PREFIXES = {
    "strength": "This is an internal strength of the business, something it already does well: ",
    "weakness": "This is an internal weakness of the business, something it does poorly today: ",
    "opportunity": "This is an external opportunity for the business, a chance to grow its sales and earn more: ",
    "threat": "This is an external threat to the business, a danger that could hurt it: ",
}

SWOT = {
    "strength": [
        (
            "What makes the shop's pizza recipes or ingredients special?",
            "We make the dough fresh every morning from a family recipe, with tomatoes and basil from a farm nearby.",
        ),
        (
            "What skills and experience does the team bring?",
            "Our head cook trained in Naples and most of the kitchen staff have been with us for over five years.",
        ),
        (
            "How is the shop seen in the neighbourhood?",
            "We have a loyal local following and an average of 4.7 stars in online reviews.",
        ),
        (
            "Does the location or the premises draw customers in?",
            "We sit on a busy corner by the train station and the wood-fired oven is visible from the street.",
        ),
    ],
    "weakness": [
        (
            "What slows down day-to-day operations?",
            "Service gets slow on Friday and Saturday nights and we struggle to keep delivery drivers.",
        ),
        (
            "Are there financial constraints that limit growth or improvements?",
            "Cash is tight: we cannot afford to renovate the dining room or buy a second oven.",
        ),
        (
            "Is anything missing from what the shop offers?",
            "We have no gluten-free or vegan pizzas and our desserts are an afterthought.",
        ),
        (
            "What do customers complain about?",
            "Some reviews mention long waits for delivery and pizzas that arrive cold.",
        ),
    ],
    "opportunity": [
        (
            "Could new products or services bring in business?",
            "Catering for office lunches and birthday parties would bring extra sales from large orders "
            "on quiet weekdays.",
        ),
        (
            "Are there customers or areas the shop does not reach yet?",
            "The new university campus nearby has thousands of students who would buy late-night slices.",
        ),
        (
            "Could technology improve how the shop runs?",
            "An online ordering app would take more orders at busy times and let us sell lunch specials.",
        ),
        (
            "Are there partners or local events to take advantage of?",
            "The summer street festival and the local football club both want a food stall, which means new income.",
        ),
    ],
    "threat": [
        (
            "Who are the main competitors and what do they offer?",
            "Two national chains opened nearby with cheap deals and fast delivery.",
        ),
        (
            "Could changes in the area hurt the business?",
            "Road works outside the shop are planned for next year and the office block across the street may close.",
        ),
        (
            "Are there economic trends that could hurt the shop?",
            "Cheese and flour prices keep rising and people are eating out less.",
        ),
        (
            "Could new rules or laws affect the business?",
            "Stricter food safety inspections and a higher minimum wage would raise our costs.",
        ),
    ],
}


@pytest.fixture(scope="module")
def swot_store(tmp_path_factory: pytest.TempPathFactory) -> MemoryStore:
    store = MemoryStore(tmp_path_factory.mktemp("course") / "memory", default_embedder())
    store.save_many(
        "SWOT",
        [
            {"id": f"{category}-{i}", "text": f"{PREFIXES[category]}Q: {question} A: {answer}"}
            for category, answers in SWOT.items()
            for i, (question, answer) in enumerate(answers)
        ],
    )
    yield store
    store.close()


def test_the_swot_collection_holds_sixteen_records(swot_store: MemoryStore) -> None:
    assert swot_store.count("SWOT") == 16
    [info] = swot_store.collections()
    assert (info.name, info.embedder, info.dimensions) == ("SWOT", "all-MiniLM-L6-v2-int8", 384)
    assert swot_store.get("SWOT", "opportunity-1").text.startswith(PREFIXES["opportunity"])


def test_making_more_money_brings_an_opportunity_first(swot_store: MemoryStore) -> None:
    hits = swot_store.search("SWOT", "What are the easiest ways to make more money?", limit=5, min_relevance=0.2)
    assert hits, "nothing passed the relevance floor"
    assert hits[0].record.id.startswith("opportunity-"), [(h.record.id, round(h.relevance, 3)) for h in hits]
    assert sum(h.record.id.startswith("opportunity-") for h in hits[:3]) >= 2
    assert all(0.2 <= h.relevance <= 1.0 for h in hits)


def test_the_store_is_found_again_after_reopening(swot_store: MemoryStore, tmp_path: Path) -> None:
    with MemoryStore(swot_store.path, default_embedder()) as again:
        first = again.search("SWOT", "What are the easiest ways to make more money?", limit=1)[0]
        assert first.record.id.startswith("opportunity-")
