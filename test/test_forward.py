# SPDX-License-Identifier: Apache-2.0
"""Forward model: FFT convolution, compositing, gradients, noise."""

import numpy as np
import pytest
import scipy.ndimage
import torch
from helpers import real_coded_file

from codedap_depth.forward import (
    LayeredBlur,
    add_sensor_noise,
    layer_weights,
    replicate_pad,
    replicate_pad_adjoint,
)
from codedap_depth.optics import PSFBank, load_bank


def random_bank(k: int = 4, c: int = 1, s: int = 7, seed: int = 0) -> PSFBank:
    rng = np.random.default_rng(seed)
    psfs = rng.random((k, c, s, s))
    psfs /= psfs.sum(axis=(-1, -2), keepdims=True)
    depths = np.linspace(0.5, 3.0, k)
    return PSFBank(psfs=psfs.astype(np.float32), depths=depths.astype(np.float32))


def test_layer_weights_sum_to_one_and_interpolate_non_uniform_layers():
    layers = 1 / torch.tensor([1.0, 2.0, 5.0])  # non-uniform spacing in inverse depth
    u = torch.tensor([1.2, 1.0, 0.75, 0.5, 0.35, 0.2, 0.1]).view(1, 1, 1, -1)
    w = layer_weights(u, layers)
    assert torch.allclose(w.sum(1), torch.ones(1, 1, 7))
    # 0.75 is halfway between layers 0 (1.0) and 1 (0.5)
    assert torch.allclose(w[0, :, 0, 2], torch.tensor([0.5, 0.5, 0.0]))
    # 0.35 is halfway between layers 1 (0.5) and 2 (0.2)
    assert torch.allclose(w[0, :, 0, 4], torch.tensor([0.0, 0.5, 0.5]))
    # beyond the range: clamped to the end layers
    assert torch.allclose(w[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(w[0, :, 0, 6], torch.tensor([0.0, 0.0, 1.0]))
    # reproduces the inverse depth it was given (linear interpolation)
    assert torch.allclose((w * layers.view(1, -1, 1, 1)).sum(1), u.clamp(0.2, 1.0))


@pytest.mark.parametrize("channels", [1, 3])
def test_fft_plane_matches_direct_convolution(channels):
    bank = random_bank(c=channels, s=9)
    h, w = 23, 31
    model = LayeredBlur(bank, h, w, occlusion=False, dtype=torch.float64)
    rng = np.random.default_rng(1)
    image = rng.random((1, 3, h, w))
    u = torch.full((1, 1, h, w), 1 / float(bank.depths[2]), dtype=torch.float64)
    out = model(torch.from_numpy(image), u).numpy()[0]
    for ch in range(3):
        psf = bank.psfs[2, ch if channels == 3 else 0].astype(np.float64)
        ref = scipy.ndimage.convolve(image[0, ch], psf, mode="nearest")
        assert np.abs(out[ch] - ref).max() < 1e-5


def test_occlusion_equals_additive_without_occlusion():
    bank = random_bank()
    model_occ = LayeredBlur(bank, 24, 24, occlusion=True, dtype=torch.float64)
    model_add = LayeredBlur(bank, 24, 24, occlusion=False, dtype=torch.float64)
    image = torch.rand(2, 3, 24, 24, dtype=torch.float64)
    # fronto-parallel planes, one between two layers (soft weights)
    u = torch.stack([torch.full((1, 24, 24), 1 / 1.3), torch.full((1, 24, 24), 1 / 0.5)])
    u = u.to(torch.float64)
    assert torch.allclose(model_occ(image, u), model_add(image, u), atol=1e-10)


def test_occlusion_keeps_constant_scene_constant_and_differs_at_edges():
    bank = random_bank(s=9)
    model = LayeredBlur(bank, 32, 32, occlusion=True, dtype=torch.float64)
    u = torch.full((1, 1, 32, 32), 1 / 3.0, dtype=torch.float64)
    u[..., 8:24, 8:24] = 1 / 0.5  # a near square in front of a far wall
    out = model(torch.full((1, 3, 32, 32), 0.37, dtype=torch.float64), u)
    assert torch.allclose(out, torch.full_like(out, 0.37), atol=1e-9)
    image = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    additive = LayeredBlur(bank, 32, 32, occlusion=False, dtype=torch.float64)(image, u)
    assert (model(image, u) - additive).abs().max() > 1e-3  # occlusion matters at the edges


@pytest.mark.parametrize("occlusion", [True, False])
def test_gradcheck_image_and_depth(occlusion):
    bank = random_bank(k=3, s=3)
    model = LayeredBlur(bank, 5, 6, occlusion=occlusion, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    inv = 1 / torch.as_tensor(bank.depths, dtype=torch.float64)
    # stay strictly between layers so the piecewise-linear split is differentiable
    mid = (inv[0] + inv[1]) / 2 + 0.3 * (inv[0] - inv[1]) * (
        torch.rand(1, 1, 5, 6, generator=gen, dtype=torch.float64) - 0.5
    )
    u = mid.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(model, (image, u), eps=1e-6, atol=1e-6)


def test_real_bank_loads_and_renders():
    bank = load_bank(real_coded_file("psfs_29.npz"))
    assert bank.psfs.shape == (8, 1, 11, 11)
    model = LayeredBlur(bank, 40, 48)
    image = torch.rand(1, 3, 40, 48)
    u = torch.full((1, 1, 40, 48), 1 / 2.7)
    out = model(image, u)
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert out.std() < image.std()  # blur removes contrast


def test_bad_shapes_are_rejected():
    model = LayeredBlur(random_bank(c=3), 16, 16)
    with pytest.raises(ValueError, match="3 image channels"):
        model(torch.rand(1, 1, 16, 16), torch.ones(1, 1, 16, 16))
    with pytest.raises(ValueError, match="inverse depth"):
        model(torch.rand(1, 3, 16, 16), torch.ones(1, 16, 16))
    with pytest.raises(ValueError, match="smaller than"):
        LayeredBlur(random_bank(s=7), 5, 16)


def test_noise_is_seeded_and_has_the_requested_sigma():
    clean = torch.full((1, 3, 128, 128), 0.5)
    a = add_sensor_noise(clean, 0.02, torch.Generator().manual_seed(3))
    b = add_sensor_noise(clean, 0.02, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs(float((a - clean).std()) - 0.02) < 0.002
    shot = add_sensor_noise(clean, 0.0, torch.Generator().manual_seed(3), photons=100.0)
    assert abs(float((shot - clean).std()) - np.sqrt(0.5 / 100)) < 0.01


@pytest.mark.parametrize("occlusion", [True, False])
@pytest.mark.parametrize("bank_channels", [1, 3])
def test_fixed_depth_operator_has_an_exact_adjoint(occlusion, bank_channels):
    gen = torch.Generator().manual_seed(4)
    model = LayeredBlur(random_bank(k=5, c=bank_channels), 11, 13, occlusion=occlusion,
                        dtype=torch.float64)
    inv = 1 / 3.0 + (2.0 - 1 / 3.0) * torch.rand(2, 1, 11, 13, generator=gen, dtype=torch.float64)
    operator = model.at(inv)
    x = torch.rand(2, 3, 11, 13, generator=gen, dtype=torch.float64)
    r = torch.randn(2, 3, 11, 13, generator=gen, dtype=torch.float64)
    assert torch.allclose(operator(x), model(x, inv))
    lhs, rhs = (operator(x) * r).sum(), (x * operator.adjoint(r)).sum()
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    x.requires_grad_(True)  # the adjoint is the autograd vector-Jacobian product
    (grad,) = torch.autograd.grad((model(x, inv) * r).sum(), x)
    assert torch.allclose(grad, operator.adjoint(r))


def test_replicate_pad_adjoint():
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(2, 6, 9, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 12, 15, generator=gen, dtype=torch.float64)
    lhs = (replicate_pad(z, 3) * w).sum()
    assert abs(lhs - (z * replicate_pad_adjoint(w, 3)).sum()) < 1e-12 * abs(lhs)
    assert torch.equal(replicate_pad_adjoint(w, 0), w)
