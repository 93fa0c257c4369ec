"""``bench.local_model`` on two prompts: it runs both paths and reports them (never timed).
Needs the local-model extra, as tests/daemon/providers/test_embedded.py does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import local_model
from inftd.daemon.providers import embedded


def test_both_paths_stream_every_prompt_and_the_table_says_so(tmp_path: Path) -> None:
    if not embedded.installed():
        if os.environ.get("CI"):
            pytest.fail("the local-model extra is not installed: CI must test it")
        pytest.skip("needs the local-model extra (make local-model)")
    out = tmp_path / "results.md"
    assert local_model.main(["--quick", "--tokens", "8", "--out", str(out)]) == 0
    table = out.read_text()
    assert "| llama.cpp directly (baseline) |" in table
    assert "| inftd's embedded provider |" in table
    assert "2 prompts, 8 tokens each at most" in table
