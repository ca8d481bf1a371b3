"""``kernel-app models``: every tier with its state, as a user sees it (a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_app.providers.llama.cache import parts_installed
from kernel_app.providers.llama.tiers import DEFAULT_TIER, TIERS
from tests.support.cli import run_cli

pytestmark = pytest.mark.e2e  # kernel-app in a subprocess


def test_models_lists_every_tier_with_its_state_and_install_command(tmp_path: Path) -> None:
    done = run_cli("models", XDG_CACHE_HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "INSTALLED", "VERIFIED", "MODEL"]
    for tier in TIERS.values():
        row = next(line for line in lines if line.startswith(tier.name + " "))
        installed = parts_installed(tier)
        # An empty cache: nothing is verified yet, whatever is installed.
        assert row.split()[3:5] == ["yes" if installed else "no", "no"]
        assert row.endswith("(default)") == (tier.name == DEFAULT_TIER)
        following = lines[lines.index(row) + 1]
        assert (f"install: {tier.install_command}" in following) == (not installed)
    assert f"cache: {tmp_path / 'kernel-app' / 'models'}" in done.stdout


def test_models_json_and_an_unknown_tier_to_prepare(tmp_path: Path) -> None:
    listed = json.loads(run_cli("models", "--json", XDG_CACHE_HOME=str(tmp_path)).stdout)
    assert [tier["name"] for tier in listed["tiers"]] == list(TIERS)
    assert [tier["default"] for tier in listed["tiers"]].count(True) == 1
    assert listed["threads"] >= 1
    failed = run_cli("models", "--prepare", "gpt-9", XDG_CACHE_HOME=str(tmp_path))
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.strip().startswith("error: unknown model 'gpt-9': use one of qwen2.5-coder-1.5b")
