"""The throughput benchmark runs end to end (timings themselves are not asserted)."""

from __future__ import annotations

import json

import pytest

from pianomime_env.benchmark import run_benchmark


def test_benchmark_runs_and_reports_ratios(tmp_path):
    pytest.importorskip("shimmy")
    out = tmp_path / "bench.json"
    res = run_benchmark(
        song="CMajorScaleOneHand", steps=20, runs=1, vector=False, startup=False, out=out
    )
    saved = json.loads(out.read_text())
    for key in ("ours/mujoco", "ours/robopianist"):
        assert res["ratios"][key] > 0 and saved["ratios"][key] == res["ratios"][key]
    assert res["throughput"]["ours"]["median"] > 0
    assert res["step_breakdown_ms"]["total"] > 0
