# SPDX-License-Identifier: Apache-2.0
"""DFD-DPS / DPS sampler and the Reconstructor on CPU: shipped prior, small frames, few steps."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import REPO

from codedap_depth.baselines import classical_reconstruct, layer_spread
from codedap_depth.consistency import solve_image
from codedap_depth.forward import LayeredBlur
from codedap_depth.metrics import depth_metrics, psnr
from codedap_depth.optics import PSFBank, load_camera, synthesize_bank
from codedap_depth.pipeline import METHODS, ReconstructionConfig, Reconstructor
from codedap_depth.sampler import (
    SAMPLERS,
    SamplerConfig,
    ddim_step,
    ddim_timesteps,
    depth_refit_start,
    dfd_dps,
    dps,
    known_depth_path,
    predict_x0,
)
from codedap_depth.scenes import fill_unknown, load_scene
from codedap_depth.simulate import simulate_capture

SIZE = (64, 48)


@pytest.fixture(scope="module")
def prior():
    from codedap_depth.prior import load_prior

    try:
        return load_prior("cpu")
    except FileNotFoundError as err:
        pytest.skip(f"shipped prior weights not trained yet: {err}")


@pytest.fixture(scope="module")
def bank() -> PSFBank:
    return synthesize_bank(load_camera(REPO / "config" / "camera.yaml"))


@pytest.fixture(scope="module")
def scene(bank):
    return load_scene("layered", (float(bank.depths[0]), float(bank.depths[-1])), SIZE)


def test_ddim_schedule_any_step_count():
    assert ddim_timesteps(10)[0] == 999 and ddim_timesteps(10)[-1] == 0
    assert ddim_timesteps(1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(0)


def test_ddim_step_is_eq_12_for_host_numbers_and_tensors():
    g = torch.Generator().manual_seed(0)
    x_t, eps, direction = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
    a, a_prev = 0.3, 0.7
    x0 = ((x_t - (1 - a) ** 0.5 * eps) / a**0.5).clamp(-1, 1)
    step = ddim_step(x_t, eps, a, a_prev)
    assert torch.allclose(step.x0, x0) and torch.equal(step.x0, predict_x0(x_t, eps, a))
    assert torch.allclose(step.prev_sample, a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps)
    mixed = ddim_step(x_t, eps, a, a_prev, direction).prev_sample
    assert torch.allclose(mixed, a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * direction)
    on_device = ddim_step(x_t, eps, torch.tensor(a), torch.tensor(a_prev))
    assert torch.allclose(on_device.prev_sample, step.prev_sample, atol=1e-6)


def test_samplers_are_chosen_from_the_registry(prior, bank, scene):
    assert METHODS[:len(SAMPLERS)] == tuple(SAMPLERS) == ("dfd-dps", "dps")
    assert SAMPLERS["dfd-dps"].run is dfd_dps and SAMPLERS["dps"].run is dps
    assert SAMPLERS["dfd-dps"].capturable and not SAMPLERS["dps"].capturable  # autograd
    coded = simulate_capture(scene, bank, 0.01, seed=0)
    run = Reconstructor(bank, ReconstructionConfig(method="dps", steps=2), prior)
    with pytest.raises(ValueError, match="needs method dfd-dps, not 'dps'"):
        run(coded, known_depth=np.ones(coded.shape[:2], np.float32))


def test_device_call_runs_a_frames_device_work_and_changes_nothing(prior, bank, scene):
    coded = simulate_capture(scene, bank, 0.01, seed=0)
    config = ReconstructionConfig(steps=3, seed=2, sampler=SamplerConfig(renoise=0.2))
    run = Reconstructor(bank, config, prior)
    before = run(coded)
    work = run.device_call(coded)
    assert work() is None and work() is None
    after = run(coded)
    assert np.array_equal(before.depth, after.depth) and np.array_equal(before.aif, after.aif)
    with pytest.raises(ValueError, match="device_call needs a sampler method"):
        Reconstructor(bank, ReconstructionConfig(method="classical")).device_call(coded)


def test_data_residual_falls_and_same_seed_gives_same_output(prior, bank, scene):
    coded = simulate_capture(scene, bank, 0.01, seed=0)
    run = Reconstructor(bank, ReconstructionConfig(steps=8, seed=5), prior)
    assert not run.graphed  # CUDA graphs are a CUDA-only path (test_cuda.py)
    first, second = run(coded), run(coded)
    assert first.residuals[-1] < first.residuals[0]
    assert np.array_equal(first.depth, second.depth) and np.array_equal(first.aif, second.aif)
    assert np.array_equal(run(coded, seed=6).aif, first.aif)  # renoise 0: deterministic
    stochastic = Reconstructor(bank, ReconstructionConfig(
        steps=8, seed=5, sampler=SamplerConfig(renoise=0.2)), prior)
    assert not np.array_equal(stochastic(coded).aif, stochastic(coded, seed=6).aif)
    assert first.depth.shape == (48, 64) and first.aif.shape == (48, 64, 3)
    assert np.all(first.depth >= bank.depths[0] - 1e-4)
    assert np.all(first.depth <= bank.depths[-1] + 1e-4)


def test_known_depth_aif_beats_least_squares_deconvolution(prior, bank):
    """The image half: with the true depth given, the prior-based AIF beats the occlusion-aware
    least-squares deconvolution with a Gaussian gradient prior (tuned: the best of three
    gradient stds, 200 CG iterations) on a textured scene at noise 0.01."""
    scene = load_scene("motorcycle", (float(bank.depths[0]), float(bank.depths[-1])), (96, 72))
    coded = simulate_capture(scene, bank, 0.01, seed=0)
    y = torch.from_numpy(coded.transpose(2, 0, 1).copy())[None]
    model = LayeredBlur(bank, *y.shape[-2:])
    operator = model.at(torch.from_numpy(1 / fill_unknown(scene.depth))[None, None])
    valid = torch.ones_like(y[:, :1])
    least_squares = max(
        psnr(solve_image(operator, y, valid, y, 0.0, (0.01 / s) ** 2, 200).image[0]
             .clamp(0, 1).permute(1, 2, 0).numpy(), scene.rgb) for s in (0.1, 0.2, 0.3))
    rec = Reconstructor(bank, ReconstructionConfig(steps=10), prior)(coded,
                                                                     known_depth=scene.depth)
    assert psnr(rec.aif, scene.rgb) > least_squares + 0.5
    assert np.allclose(rec.depth, fill_unknown(scene.depth), rtol=1e-5)


def test_more_steps_do_not_lower_known_depth_quality(prior, bank):
    """Quality does not fall with more steps: the known-depth AIF's mean PSNR over a fixed set
    of captures (two noise seeds) at 5, 20 and 60 steps, each at most 0.1 dB below the one
    before (without ``path_steps`` damping, 60 steps lost 0.23 dB against 20 here)."""
    scene = load_scene("motorcycle", (float(bank.depths[0]), float(bank.depths[-1])), (96, 72))
    captures = [simulate_capture(scene, bank, 0.01, seed=seed) for seed in (0, 1)]
    means = []
    for steps in (5, 20, 60):
        run = Reconstructor(bank, ReconstructionConfig(steps=steps), prior)
        means.append(np.mean([psnr(run(coded, known_depth=scene.depth).aif, scene.rgb)
                              for coded in captures]))
    assert means[1] >= means[0] - 0.1 and means[2] >= means[1] - 0.1, means


def test_more_steps_do_not_lower_blind_quality(prior, bank):
    """Blind frames (depth and AIF estimated) do not get worse with more steps: over a fixed
    set of captures, the AIF's mean PSNR, AbsRel and delta1 at 4, 20 and 40 steps each hold
    against the count before. With a re-fit at every step of the second half
    (``depth_refits`` large, the rule before session 24) 20 steps lost 0.12 dB, 0.015 AbsRel
    and 0.02 delta1 against 4 here."""
    scene = load_scene("motorcycle", (float(bank.depths[0]), float(bank.depths[-1])), (96, 72))
    captures = [simulate_capture(scene, bank, 0.01, seed=seed) for seed in (0, 1)]
    scores = []
    for steps in (4, 20, 40):
        run = Reconstructor(bank, ReconstructionConfig(steps=steps), prior)
        outs = [run(coded) for coded in captures]
        depth = [depth_metrics(out.depth, scene.depth) for out in outs]
        scores.append((np.mean([psnr(out.aif, scene.rgb) for out in outs]),
                       np.mean([m.absrel for m in depth]), np.mean([m.delta1 for m in depth])))
    for before, after in zip(scores[:-1], scores[1:], strict=True):
        assert after[0] >= before[0] - 0.02 and after[1] <= before[1] + 0.005, scores
        assert after[2] >= before[2] - 0.005, scores


def test_depth_is_refitted_only_in_the_last_depth_refits_steps(prior, bank, scene):
    """``depth_refits`` 0 keeps the warm start's (classical) depth however many steps run;
    one re-fit moves it; and the step it starts at follows ``depth_refit_start``."""
    coded = simulate_capture(scene, bank, 0.01, seed=0)
    classical = Reconstructor(bank, ReconstructionConfig(method="classical"))(coded).depth

    def blind_depth(refits: int) -> np.ndarray:
        config = ReconstructionConfig(steps=6, sampler=SamplerConfig(depth_refits=refits))
        return Reconstructor(bank, config, prior)(coded).depth

    assert np.allclose(blind_depth(0), classical, atol=1e-5)
    assert np.abs(blind_depth(1) - classical).max() > 0.01
    assert [depth_refit_start(6, SamplerConfig(depth_refits=r)) for r in (0, 1, 2, 6)] == [
        6, 5, 4, 3]
    with pytest.raises(ValueError, match="depth_refits"):
        SamplerConfig(depth_refits=-1)


def test_known_depth_path_extends_upward_at_its_own_level_ratio():
    """Asked for more steps than its path has, a known-depth frame starts higher at the same
    ratio between levels, never above ``path_top`` (one more level would pass it); fewer
    steps keep ``sigma_max``; a ``path_top`` below ``sigma_max`` is refused."""
    config = SamplerConfig()
    for sigma in (0.05, 0.0497, 0.02):
        cut = known_depth_path(1000, sigma, replace(config, path_top=config.sigma_max))
        path = known_depth_path(1000, sigma, config)
        ratio = (config.sigma_max / sigma) ** (1 / (cut.steps - 1))
        assert (path.sigma_start / sigma) ** (1 / (path.steps - 1)) == pytest.approx(ratio)
        assert config.sigma_max < path.sigma_start <= config.path_top < path.sigma_start * ratio
        assert known_depth_path(cut.steps, sigma, config) == cut
        assert cut.sigma_start == config.sigma_max
    with pytest.raises(ValueError, match="path_top"):
        SamplerConfig(path_top=0.1)


def test_high_noise_known_depth_path_gains_from_more_steps_and_then_stays(prior, bank):
    """At noise 0.05 a known-depth frame asked for 4 steps runs 4 levels from ``sigma_max``;
    asked for 20 or 50 it runs the same 8 levels, started at 1.27 (``known_depth_path``): the
    AIF's mean PSNR over two noise seeds rises by more than 0.5 dB from 4 to 20 steps and 50
    equal 20. With the path only cut (``path_top`` = ``sigma_max``) all three scored 18.29 dB
    here, and with every step run from ``sigma_max`` (``path_factor`` 1e6) slanted lost 0.88
    and 1.20 dB at 20 and 50 steps against 4. Blind frames run every step."""
    scene = load_scene("layered", (float(bank.depths[0]), float(bank.depths[-1])), (96, 72))
    captures = [simulate_capture(scene, bank, 0.05, seed=seed) for seed in (0, 1)]
    means = []
    for steps, levels in ((4, 4), (20, 8), (50, 8)):
        run = Reconstructor(bank, ReconstructionConfig(steps=steps, noise_sigma=0.05), prior)
        recs = [run(coded, known_depth=scene.depth) for coded in captures]
        assert all(len(rec.residuals) == levels for rec in recs)
        means.append(np.mean([psnr(rec.aif, scene.rgb) for rec in recs]))
    assert means[1] > means[0] + 0.5 and means[2] == means[1], means
    blind = Reconstructor(bank, ReconstructionConfig(steps=20, noise_sigma=0.05), prior)
    assert len(blind(captures[0]).residuals) == 20


def test_step_gradient_prior_applies_only_when_depth_is_estimated(prior, bank, scene):
    """``step_gradient_sigma`` smooths the image steps of a blind frame (lower gradient energy
    than without it) and leaves a known-depth frame exactly as without it."""
    coded = simulate_capture(scene, bank, 0.01, seed=0)

    def run(sigma: float, **kwargs):
        config = ReconstructionConfig(steps=3, sampler=SamplerConfig(step_gradient_sigma=sigma))
        return Reconstructor(bank, config, prior)(coded, **kwargs).aif

    def gradient_energy(image: np.ndarray) -> float:
        return float(np.mean(np.diff(image, axis=0) ** 2) + np.mean(np.diff(image, axis=1) ** 2))

    assert gradient_energy(run(0.05)) < gradient_energy(run(0.0))
    assert np.array_equal(run(0.05, known_depth=scene.depth), run(0.0, known_depth=scene.depth))
    with pytest.raises(ValueError, match="step_gradient_sigma"):
        SamplerConfig(step_gradient_sigma=-0.1)


def test_known_depth_is_validated(prior, bank, scene):
    coded = simulate_capture(scene, bank, 0.01, seed=0)
    run = Reconstructor(bank, ReconstructionConfig(steps=2), prior)
    with pytest.raises(ValueError, match="frame's size"):
        run(coded, known_depth=scene.depth[:-1])
    bad = scene.depth.copy()
    bad[0, 0] = 0.0
    with pytest.raises(ValueError, match="positive metres"):
        run(coded, known_depth=bad)
    with pytest.raises(ValueError, match="needs method dfd-dps"):
        Reconstructor(bank, ReconstructionConfig(method="classical"))(coded,
                                                                      known_depth=scene.depth)
    holes = scene.depth.copy()
    holes[:5] = np.nan  # unknown pixels take the nearest known depth
    assert np.isfinite(run(coded, known_depth=holes).depth).all()


def test_uncertainty_adds_the_sample_spread_to_the_layer_posterior(prior, bank, scene):
    coded = simulate_capture(scene, bank, 0.02, seed=0)
    single = Reconstructor(bank, ReconstructionConfig(steps=6, samples=1), prior)(coded)
    classical = classical_reconstruct(coded, bank, single.noise_sigma)
    expected = layer_spread(torch.from_numpy(classical.cost), torch.from_numpy(bank.depths),
                            torch.from_numpy(single.depth))
    np.testing.assert_allclose(single.uncertainty, expected.numpy(), rtol=1e-4, atol=1e-5)
    assert single.uncertainty.min() >= 0 and single.uncertainty.max() > 0
    assert single.uncertainty.max() <= bank.depths[-1] - bank.depths[0]

    stochastic = SamplerConfig(renoise=0.2)  # renoise 0 (default) makes the samples equal
    several = Reconstructor(bank, ReconstructionConfig(steps=6, samples=4, sampler=stochastic),
                            prior)
    rec = several(coded)
    assert np.all(np.isfinite(rec.uncertainty))
    # several samples: the between-sample variance adds to the mean layer-posterior variance
    assert np.all(rec.uncertainty >= 0) and rec.uncertainty.max() > 0
    assert rec.uncertainty.max() <= bank.depths[-1] - bank.depths[0]
    known = Reconstructor(bank, ReconstructionConfig(steps=3), prior)(
        coded, known_depth=scene.depth)
    assert np.all(known.uncertainty == 0)  # the depth was given


def test_mono_and_colour_banks(prior, bank, scene):
    coded = simulate_capture(scene, bank, 0.01, seed=0)
    mono = Reconstructor(bank, ReconstructionConfig(steps=3), prior)(coded.mean(-1))
    assert mono.aif.shape == (48, 64, 1) and np.isfinite(mono.depth).all()
    colour = PSFBank(psfs=np.repeat(bank.psfs, 3, axis=1), depths=bank.depths)
    rgb = Reconstructor(colour, ReconstructionConfig(steps=3), prior)(coded)
    assert rgb.aif.shape == (48, 64, 3)
    with pytest.raises(ValueError, match="must be RGB"):
        Reconstructor(colour, ReconstructionConfig(steps=3), prior)(coded.mean(-1))


def test_dps_variant_runs(prior, bank, scene):
    coded = simulate_capture(scene, bank, 0.01, seed=0)
    rec = Reconstructor(bank, ReconstructionConfig(method="dps", steps=4), prior)(coded)
    assert np.isfinite(rec.depth).all() and len(rec.residuals) == 4


def test_odd_frame_sizes_are_padded_and_cropped(prior, bank):
    scene = load_scene("slanted", (0.5, 5.0), (61, 45))
    rec = Reconstructor(bank, ReconstructionConfig(steps=2), prior)(
        simulate_capture(scene, bank, 0.01)
    )
    assert rec.depth.shape == (45, 61) and rec.aif.shape == (45, 61, 3)


def test_bad_inputs_get_clear_errors(bank):
    run = Reconstructor(bank, ReconstructionConfig(method="classical"))
    with pytest.raises(ValueError, match="smaller than the 21 px PSF"):
        run(np.zeros((15, 40, 3), np.float32))
    bad = np.full((48, 64, 3), 0.5, np.float32)
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run(bad)
    with pytest.raises(ValueError, match=r"\[H, W, 1\|3\]"):
        run(np.zeros((48, 64, 2), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\] intensities"):
        run(np.full((48, 64), 3.0, np.float32))
    one_layer = PSFBank(psfs=bank.psfs[:1], depths=bank.depths[:1])
    with pytest.raises(ValueError, match="at least 2 depth layers"):
        Reconstructor(one_layer, ReconstructionConfig(method="classical"))
    with pytest.raises(ValueError, match="method"):
        ReconstructionConfig(method="magic")


def test_guided_pooling_keeps_the_two_sides_of_an_image_edge_apart():
    from codedap_depth.consistency import box_mean, guided_mean

    guide = torch.zeros(1, 1, 32, 32)
    guide[..., 16:] = 1.0  # an image edge between columns 15 and 16
    cost = torch.where(torch.arange(32) < 16, 0.2, 0.8).expand(1, 1, 32, 32)
    pooled = guided_mean(cost, guide, radius=4, eps=1e-4)
    assert torch.allclose(pooled, cost, atol=1e-3)  # no bleeding across the edge
    assert not torch.allclose(box_mean(cost, 9), cost, atol=0.1)  # a box window bleeds
    flat = guided_mean(cost, torch.zeros_like(guide), radius=4, eps=1e-4)
    assert torch.allclose(flat, box_mean(box_mean(cost, 9), 9), atol=1e-5)
