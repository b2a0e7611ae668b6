"""The throughput benchmark: runs end to end, and its ratios catch real regressions.

The bounds are far below what is measured (ours/mujoco ~0.9, fast/ours ~1.7, physics ~90 % of a
step; docs/benchmarks.md) so that a loaded CI machine passes, but a step that grows a heavy
Python path, or a fast-physics option that stops changing the physics, fails. The contenders are
interleaved every 10 steps, so machine load hits them alike.
"""

from __future__ import annotations

import json

import pytest

from pianomime_env.app.benchmark import run_benchmark


def test_benchmark_ratios_and_breakdown(tmp_path):
    pytest.importorskip("shimmy")
    out = tmp_path / "bench.json"
    res = run_benchmark(
        song="CMajorScaleOneHand", steps=100, runs=1, vector=False, startup=False, out=out
    )
    saved = json.loads(out.read_text())
    assert saved["ratios"] == res["ratios"]
    r = res["ratios"]
    assert r["ours/mujoco"] > 0.6, r
    assert r["ours_fast/ours"] > 1.2, r
    assert r["ours/robopianist"] > 1.0, r  # RoboPianist's Python-heavy step is slower
    b = res["step_breakdown_ms"]
    parts = sum(v for k, v in b.items() if k != "total")
    assert parts == pytest.approx(b["total"], rel=1e-6)
    assert b["physics (mj_step*)"] > 0.5 * b["total"]
    assert {"reward: KeyPress", "reward: Sustain", "key state", "observation"} <= set(b)
