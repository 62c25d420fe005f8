# SPDX-License-Identifier: Apache-2.0
"""Tests of the diffusion prior: dataset manifest, loading, range conversion, training smoke."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from codedap_depth.prior import from_prior_range, load_prior, random_prior, to_prior_range
from codedap_depth.prior.model import CONFIG_FILE, UNET_FILE, WEIGHTS_DIR, build_unet
from codedap_depth.tools.prior_dataset import EVAL_TEXTURES, MANIFEST_PATH

REPO = Path(__file__).resolve().parent.parent
SHIPPED = WEIGHTS_DIR / UNET_FILE
NEED_WEIGHTS = pytest.mark.skipif(
    not SHIPPED.is_file(),
    reason="shipped prior weights not trained yet: codedap_depth/weights/unet.safetensors missing")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST_PATH.read_text())


def _record(manifest: dict, name: str) -> dict:
    return next(r for r in manifest["photos"] if r["name"] == name)


@pytest.mark.parametrize("name, dist", [("skimage/astronaut", "scikit-image"),
                                        ("matplotlib/grace_hopper", "matplotlib")])
def test_manifest_sha256_matches_bundled_file(manifest: dict, name: str, dist: str) -> None:
    rec = _record(manifest, name)
    assert rec["version"] == importlib.metadata.version(dist)
    data = Path(importlib.metadata.distribution(dist).locate_file(rec["path"])).read_bytes()
    assert hashlib.sha256(data).hexdigest() == rec["sha256"]
    assert len(data) == rec["bytes"]


def test_manifest_excludes_evaluation_scenes_and_holds_eval_textures(manifest: dict) -> None:
    kept = [r["name"].lower() + " " + r["path"].lower() for r in manifest["photos"]]
    for bad in ("middlebury", "motorcycle", "aloe", "tsukuba", "rubberwhale", "basketball"):
        assert not any(bad in k for k in kept), bad
    dropped = {r["name"] for r in manifest["dropped"]}
    assert {"skimage/motorcycle_left", "opencv-doc/aloeL"} <= dropped
    assert all(r["reason"] for r in manifest["dropped"])
    split = {r["name"]: r["split"] for r in manifest["photos"]}
    for name in EVAL_TEXTURES:
        assert split[name] == "val", name
    assert manifest["counts"]["val"] >= len(EVAL_TEXTURES) + 1
    assert {r["sha256"] for r in manifest["photos"]}.__len__() == len(manifest["photos"])


def test_random_prior_eps_shape_dtype() -> None:
    prior = random_prior()
    x = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    eps = prior.eps(x, torch.tensor([0, 999]))
    assert eps.shape == (2, 3, 16, 24) and eps.dtype == torch.float32
    assert torch.isfinite(eps).all()
    assert prior.alphas_cumprod.shape == (1000,) and prior.alphas_cumprod.dtype == torch.float32
    with pytest.raises(ValueError):
        prior.eps(torch.randn(1, 3, 15, 16), torch.tensor([5]))
    assert not any(p.requires_grad for p in prior.unet.parameters())


def test_prior_range_round_trip_and_greyscale() -> None:
    x = torch.rand(2, 3, 5, 7)
    p = to_prior_range(x)
    assert p.min() >= -1 and p.max() <= 1
    torch.testing.assert_close(from_prior_range(p), x)
    g = torch.rand(2, 1, 5, 7)
    pg = to_prior_range(g)
    assert pg.shape == (2, 3, 5, 7)
    torch.testing.assert_close(pg[:, 0], pg[:, 2])
    torch.testing.assert_close(from_prior_range(pg)[:, 1:2], g)
    with pytest.raises(ValueError):
        to_prior_range(torch.rand(1, 2, 4, 4))


def _val_crop(size: int = 64) -> torch.Tensor:
    """A held-out (val) 64x64 crop in [0, 1]: skimage coffee, which is forced into val."""
    import skimage

    path = Path(skimage.__file__).parent / "data" / "coffee.png"
    img = Image.open(io.BytesIO(path.read_bytes())).convert("RGB")
    img = img.resize((img.width * 384 // img.height, 384), Image.Resampling.LANCZOS)
    a = np.asarray(img, np.float32)[160:160 + size, 250:250 + size] / 255.0
    return torch.from_numpy(a).permute(2, 0, 1)[None]


@NEED_WEIGHTS
def test_shipped_prior_denoises_held_out_crop() -> None:
    prior = load_prior("cpu")
    x = _val_crop()
    sigma = 0.1
    y = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    abar = prior.alphas_cumprod
    t = int((((1 - abar) / abar).sqrt() - 2 * sigma).abs().argmin())
    a = abar[t].item()
    x_t = math.sqrt(a) * to_prior_range(y)
    with torch.no_grad():
        eps = prior.eps(x_t, torch.tensor([t]))
    den = from_prior_range((x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(0, 1)

    def psnr(z: torch.Tensor) -> float:
        return -10 * math.log10(((z.clamp(0, 1) - x) ** 2).mean().item())

    assert psnr(den) >= psnr(y) + 5.0, (psnr(y), psnr(den))


@NEED_WEIGHTS
def test_shipped_config_and_weights_agree() -> None:
    from safetensors import safe_open

    config = json.loads((WEIGHTS_DIR / CONFIG_FILE).read_text())
    expected = {k: tuple(v.shape) for k, v in build_unet(config).state_dict().items()}
    with safe_open(str(SHIPPED), framework="pt") as f:
        got = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert got == expected
    for f in WEIGHTS_DIR.iterdir():
        assert f.stat().st_size < 16 * 2**20, f


def test_load_prior_missing_weights_names_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="unet.safetensors"):
        load_prior(weights_dir=tmp_path)


def _tiny_archive(path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 3), ("val", 1)):
        for i in range(n):
            img = (rng.random((90, 120, 3)) * 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            arrays[f"{split}_{i:04d}"] = np.frombuffer(buf.getvalue(), np.uint8)
        arrays[f"{split}_names"] = np.array([f"t/{split}{i}" for i in range(n)])
    np.savez(path, **arrays)


def test_train_smoke_writes_loadable_weights(tmp_path: Path) -> None:
    from codedap_depth.tools.prior_train import main

    data = tmp_path / "photos.npz"
    _tiny_archive(data)
    out = tmp_path / "run"
    main(["--data", str(data), "--out", str(out), "--device", "cpu", "--max-steps", "2",
          "--batch", "2", "--crop-max", "64", "--channels", "32,32", "--layers-per-block",
          "1", "--norm-groups", "8", "--dead-leaves", "0.5", "--log-every", "1",
          "--t-focus", "512"])
    info = json.loads((out / "training.json").read_text())
    assert info["steps"] == 2 and math.isfinite(info["final_loss"])
    assert (info["config"]["t_focus"], info["config"]["t_focus_share"]) == (512, 0.8)
    prior = load_prior("cpu", weights_dir=out)
    assert prior.size_multiple == 2
    eps = prior.eps(torch.zeros(1, 3, 8, 8), torch.tensor([10]))
    assert eps.shape == (1, 3, 8, 8)
    # a config that disagrees with the weights is refused
    cfg = json.loads((out / "config.json").read_text())
    cfg["block_out_channels"] = [32, 64]
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not match"):
        load_prior("cpu", weights_dir=out)


def test_train_init_continues_from_earlier_weights_of_the_same_architecture(
        tmp_path: Path) -> None:
    import hashlib

    from safetensors.torch import load_file

    from codedap_depth.tools.prior_train import main

    data = tmp_path / "photos.npz"
    _tiny_archive(data)
    small = ["--data", str(data), "--device", "cpu", "--batch", "2", "--crop-max", "64",
             "--channels", "32,32", "--layers-per-block", "1", "--norm-groups", "8"]
    first, second = tmp_path / "first", tmp_path / "second"
    main([*small, "--out", str(first), "--max-steps", "2"])
    # zero learning rate: the continued run's weights are the start's, as the EMA of a still model
    main([*small, "--out", str(second), "--max-steps", "1", "--lr", "0", "--init", str(first)])
    info = json.loads((second / "training.json").read_text())
    start = info["started_from"]
    assert start["sha256"] == hashlib.sha256((first / "unet.safetensors").read_bytes()).hexdigest()
    assert start["steps"] == 2
    a, b = load_file(str(first / "unet.safetensors")), load_file(str(second / "unet.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="another architecture.*block_out_channels"):
        main([*small[:-6], "--channels", "32,64", "--layers-per-block", "1", "--norm-groups",
              "8", "--out", str(tmp_path / "third"), "--max-steps", "1", "--init", str(first)])


def test_train_refuses_a_timestep_focus_outside_the_schedule(capsys) -> None:
    from codedap_depth.tools.prior_train import _parse_args

    base = ["--data", "d.npz", "--out", "o"]
    assert _parse_args([*base, "--t-focus", "512"]).t_focus == 512
    for bad in (["--t-focus", "1001"], ["--t-focus", "-1"], ["--t-focus-share", "1.5"]):
        with pytest.raises(SystemExit):
            _parse_args([*base, *bad])
        assert "--t-focus" in capsys.readouterr().err
