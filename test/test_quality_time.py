# SPDX-License-Identifier: Apache-2.0
"""``benchmarks/quality_time.py`` on made-up eval rows: its points (mean quality at the median
seconds), figure and errors (the rows are synthetic: this checks the aggregation, not any
method's accuracy or speed)."""

import json

import numpy as np
import pytest
from helpers import REPO

METHODS = ("classical", "dfd-dps:4", "dfd-dps:20")
NOISES = (0.01, 0.05)
SEEDS = 3


def made_up_row(run: int, method: int, noise: int, seed: int) -> dict:
    """A results.json row whose metrics and seconds are distinct functions of its indices."""
    base = 0.1 * (run + 1) + 0.3 * method + 0.05 * noise + 0.001 * seed
    return {"scene": "a", "method": METHODS[method], "noise_sigma": NOISES[noise], "seed": seed,
            "depth_absrel": base, "depth_median_rel": base / 2, "delta1": 1 - base,
            "aif_psnr_db": 20 + 10 * base, "seconds": (method + 1) * (1 + seed ** 2),
            "device": "Test GPU"}


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import quality_time

    return quality_time


@pytest.fixture
def runs_order(script):
    """The four (set, camera) runs in the figure's column order."""
    import mismatch_figure

    return mismatch_figure.RUNS


def write_runs(folder, runs, drop_seconds_at=None) -> None:
    """The four eval runs of made-up rows under ``folder``; optionally one row without
    seconds."""
    for i, (set_name, camera) in enumerate(runs):
        rows = [made_up_row(i, m, n, k) for m in range(len(METHODS))
                for n in range(len(NOISES)) for k in range(SEEDS)]
        if drop_seconds_at == i:
            del rows[4]["seconds"]
        path = folder / f"eval_{set_name}_{camera}"
        path.mkdir(parents=True)
        (path / "results.json").write_text(json.dumps(rows))


def test_points_are_mean_quality_at_median_seconds(script, runs_order, tmp_path, capsys):
    runs = tmp_path / "runs"
    write_runs(runs, runs_order)
    png, out = tmp_path / "fig" / "qt.png", tmp_path / "points.json"
    script.main([str(runs), "--methods", "dfd-dps:4,dfd-dps:20", "--out", str(png),
                 "--json", str(out)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = json.loads(out.read_text())["points"]
    assert len(points) == len(runs_order) * len(NOISES) * 2  # classical left out
    point = next(p for p in points if p["set"] == "heldout" and p["camera"] == "camera_b"
                 and p["noise_sigma"] == 0.05 and p["method"] == "dfd-dps:20")
    run = runs_order.index(("heldout", "camera_b"))
    rows = [made_up_row(run, 2, 1, k) for k in range(SEEDS)]
    assert point["seconds"] == np.median([r["seconds"] for r in rows]) == 3 * 2
    assert point["depth_absrel"] == pytest.approx(np.mean([r["depth_absrel"] for r in rows]))
    assert "| heldout | camera_b | 0.05 | dfd-dps:20 | 6.000 |" in capsys.readouterr().out
    assert [script.step_count(m) for m in METHODS] == [0, 4, 20]


def test_a_row_without_seconds_is_named(script, runs_order, tmp_path):
    runs = tmp_path / "runs"
    write_runs(runs, runs_order, drop_seconds_at=1)
    set_name, camera = runs_order[1]
    with pytest.raises(SystemExit, match=f"eval_{set_name}_{camera}: row 4 has no positive "
                                         "seconds"):
        script.main([str(runs), "--out", str(tmp_path / "qt.png")])
