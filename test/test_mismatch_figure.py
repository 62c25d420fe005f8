# SPDX-License-Identifier: Apache-2.0
"""``benchmarks/mismatch_figure.py`` on made-up eval rows: its means, figure and errors (the
rows are synthetic: this checks the aggregation, not any method's accuracy)."""

import json
import struct
import tarfile

import pytest
from helpers import REPO

METHODS = ("classical", "unet")
NOISES = (0.01, 0.05)
SCENES = ("a", "b")
SEEDS = 2


def made_up_row(run: int, scene: int, method: int, noise: int, seed: int) -> dict:
    """A results.json row whose metrics are distinct functions of its indices."""
    base = 0.1 * (run + 1) + 0.02 * scene + 0.3 * method + 0.05 * noise + 0.001 * seed
    return {"scene": SCENES[scene], "method": METHODS[method], "noise_sigma": NOISES[noise],
            "seed": seed, "steps": 0, "depth_absrel": base, "depth_median_rel": base / 2,
            "delta1": 1 - base, "aif_psnr_db": 20 + 10 * base, "device": "Test GPU"}


def hand_mean(run: int, method: int, noise: int) -> float:
    """Mean AbsRel of ``made_up_row`` over its scenes and seeds."""
    values = [made_up_row(run, s, method, noise, k)["depth_absrel"]
              for s in range(len(SCENES)) for k in range(SEEDS)]
    return sum(values) / len(values)


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import mismatch_figure

    return mismatch_figure


@pytest.fixture
def runs_dir(tmp_path, script):
    """A runs/ folder with the four eval runs of made-up rows."""
    runs = tmp_path / "runs"
    for i, (set_name, camera) in enumerate(script.RUNS):
        rows = [made_up_row(i, s, m, n, k) for s in range(len(SCENES))
                for m in range(len(METHODS)) for n in range(len(NOISES)) for k in range(SEEDS)]
        folder = runs / f"eval_{set_name}_{camera}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(rows))
    return runs


def test_means_table_and_figure(script, runs_dir, tmp_path, capsys):
    png, out = tmp_path / "fig" / "mismatch.png", tmp_path / "means.json"
    script.main([str(runs_dir), "--out", str(png), "--json", str(out)])
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 1000 and 500 < height < width and len(data) > 20_000
    report = json.loads(out.read_text())
    assert report["device"] == "Test GPU"
    assert report["training_noise"] == script.training_noise()
    means = {(m["set"], m["camera"], m["method"], m["noise_sigma"]): m for m in report["means"]}
    assert len(means) == len(report["means"]) == len(script.RUNS) * len(METHODS) * len(NOISES)
    for i, (set_name, camera) in enumerate(script.RUNS):
        for m, method in enumerate(METHODS):
            for n, noise in enumerate(NOISES):
                mean = means[(set_name, camera, method, noise)]
                absrel = hand_mean(i, m, n)
                assert mean["depth_absrel"] == pytest.approx(absrel)
                assert mean["depth_median_rel"] == pytest.approx(absrel / 2)
                assert mean["delta1"] == pytest.approx(1 - absrel)
                assert mean["aif_psnr_db"] == pytest.approx(20 + 10 * absrel)
                assert (mean["seeds"], mean["scenes"]) == (SEEDS, len(SCENES))
    printed = capsys.readouterr().out
    assert "| set | camera | noise | method |" in printed
    assert f"| heldout | camera_b | 0.05 | unet | {hand_mean(3, 1, 1):.3f} |" in printed


def test_tarball_reads_like_the_folder(script, runs_dir, tmp_path):
    archive = tmp_path / "results.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(runs_dir, arcname="runs")
    assert script.read_runs(archive) == script.read_runs(runs_dir)


def test_bad_inputs_name_the_file(script, runs_dir, tmp_path):
    png = str(tmp_path / "x.png")
    bad = runs_dir / "eval_heldout_camera_b" / "results.json"
    rows = json.loads(bad.read_text())
    bad.write_text(json.dumps([{k: v for k, v in r.items() if k != "delta1"} for r in rows]))
    with pytest.raises(SystemExit, match="eval_heldout_camera_b/results.json: row 0 lacks delta1"):
        script.main([str(runs_dir), "--out", png])
    bad.write_text("[{")
    with pytest.raises(SystemExit, match="eval_heldout_camera_b/results.json is not valid JSON"):
        script.main([str(runs_dir), "--out", png])
    bad.unlink()
    with pytest.raises(SystemExit, match="missing run: .*eval_heldout_camera_b/results.json"):
        script.main([str(runs_dir), "--out", png])
    assert not (tmp_path / "x.png").exists()
