"""The eval command's progress bar on a terminal that reports no size (`script`, some CI runners)."""

from __future__ import annotations

import os

import pytest

from kernel_app.interfaces.cli import eval_cmd


def test_a_terminal_of_zero_columns_gets_the_usual_width(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(os, "get_terminal_size", lambda *_: os.terminal_size((0, 0)))
    assert eval_cmd._stderr_columns() == 80
    eval_cmd._terminal_progress(1, 4, "BusinessThinking.SWOTDraft case-1 on qwen2.5-coder-1.5b")
    drawn = capsys.readouterr().err  # click drops the erase code off a terminal; the rest is the bar
    assert drawn.startswith("\r[#######......") and "1/4 BusinessThinking.SWOTDraft case-1 on qwen" in drawn
