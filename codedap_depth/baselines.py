# SPDX-License-Identifier: Apache-2.0
"""Classical depth-from-coded-aperture baseline in the style of Levin et al. (2007).

For every layer ``k`` of the PSF bank the frame is scored in closed form (FFT) under a Gaussian
gradient prior, the per-pixel evidence for ``k`` is averaged in a window, semi-global matching
smooths the layer labels, a parabola refines them to continuous inverse depth, and the
all-in-focus (AIF) image is read from per-layer deconvolutions.

Model, per colour channel, on frequencies ``w`` (``G2 = |Gx|^2 + |Gy|^2`` of forward
differences, ``H_k`` the layer's optical transfer function):

1. Prior: image gradients i.i.d. Gaussian with std ``s`` (power ``s^2 / G2``), white noise of
   std ``sigma``; the capture's spectral variance under layer ``k`` is
   ``S_k = |H_k|^2 s^2 / G2 + sigma^2``.
2. Deconvolution (MAP = Wiener): ``X_k = conj(H_k) Y / (|H_k|^2 + (sigma / s)^2 G2)``.
3. Re-blur residual ``Y - H_k X_k``: its energy over ``sigma^2`` plus the prior energy of
   ``x_k`` equals ``sum |Y|^2 / S_k``, the energy of ``y`` whitened by ``S_k^-1/2``. That is
   the data term of ``-log p(y | k)``: one inverse FFT per layer, non-negative per pixel.
4. ``-log p(y | k)`` adds the log-determinant ``mean_w log S_k``. Without it a small blur
   always wins (a sharper layer explains any blurred image); with it the cost is the
   Gaussian marginal likelihood, unbiased across blur sizes.
5. Locality: the ideal whitening and Wiener filters ring far (the coded PSF has spectral
   zeros) and carry one depth region's evidence and deconvolution artefacts deep into its
   neighbours. Both are cut to ``filter_radius`` (4.5 PSF sizes, at most half the frame)
   with a raised-cosine taper.
   The cut trades locality for bias: the whitener of a large blur is long, and cut at 1.5 PSF
   sizes it under-scored the far layers (a textured plane at 2.5 m read 1.97 m, at 3.5 m
   2.76 m; 160x120, noise 0.01); at 4.5 sizes those read 2.28 and 3.14 m and the dev set's
   mean AbsRel fell from 0.88 to 0.56 (320x240, noise 0.01), at the cost of slightly wider
   errors at depth edges.
6. Scale: the prior std ``s`` is chosen per window from ``PRIOR_SCALES`` (the smallest cost,
   i.e. a Gaussian scale mixture), so high- and low-contrast regions are both modelled.

The cost ``0.5 * (box(|w_k * y|^2) / E_k + mean log S_k)`` (``E_k`` the expected squared
output of the truncated whitener, so the energy is 1 per pixel at the right layer) is in nats
per pixel, summed over channels. Semi-global matching over 4 scan directions then adds ``P1``
for a one-layer step and an edge-weighted ``P2`` for larger jumps.

All FFTs run in torch float32 on ``device``; inputs and outputs are numpy. Cost: per prior
scale one inverse FFT per layer and channel of the frame padded by ``filter_radius`` + PSF
size, plus one per layer and channel for the AIF; memory about ``2 K C`` padded frames.

Known limitations:

* Textureless regions carry no depth evidence: their label comes from the prior (a flat
  patch looks most like the largest blur) and from the smoothing.
* Depth edges: windows and filters that straddle two depths favour a nearer or intermediate
  layer over a band about ``window / 2`` + PSF radius wide; most of the depth error sits there.
* Fronto-parallel within a window; slanted surfaces are staircased, then parabola-refined.
* Frame borders: within ``filter_radius`` of the edge the padding is not blur-consistent and
  the evidence is weaker.
* ``noise_sigma`` is taken as given, not estimated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from codedap_depth.forward import (
    check_coded_image,
    fast_fft_length,
    layer_weights,
    psf_spectra,
)
from codedap_depth.optics import PSFBank

#: Candidate std of image gradients (forward differences, [0, 1] intensities), step 6.
PRIOR_SCALES = (0.1, 0.15, 0.2, 0.3, 0.4)
#: Prior gradient std of the all-in-focus deconvolution.
AIF_SCALE = 0.05
#: Tolerance on the [0, 1] range of the input before it is rejected.
RANGE_TOLERANCE = 1e-3
#: SGM penalties in nats per pixel, multiplied by ``smoothness``: one-layer step, larger jump.
_P1, _P2 = 0.4, 8.0
#: Luminance step (on [0, 1]) over which the large-jump penalty decays by 1/e across an edge.
_EDGE_SCALE = 0.2
#: Independent pixels a window's mean cost counts as in ``layer_spread``'s layer posterior
#: (chosen on the dev scenes, 160x120, noise 0.01 and 0.05; ``benchmarks/NOTES.md``).
SPREAD_TEMPERATURE = 10.0


@dataclass(frozen=True)
class ClassicalResult:
    """Output of ``classical_reconstruct``.

    Attributes:
        depth: [H, W] float32 metres, continuous (parabola-refined in inverse depth), within
            the bank's depth range; never NaN.
        aif: [H, W, C] float32 all-in-focus estimate on [0, 1], C as the input.
        layer: [H, W] int16 chosen bank layer (0 = nearest).
        cost: [K, H, W] float32 window-averaged negative log-likelihood of each layer in nats
            per pixel (whitened re-blur residual + Gaussian log-determinant, summed over
            channels, best prior scale per window), before the label smoothing.
        uncertainty: [H, W] float32 metres, ``layer_spread`` of ``cost`` around ``depth``.
    """

    depth: np.ndarray
    aif: np.ndarray
    layer: np.ndarray
    cost: np.ndarray
    uncertainty: np.ndarray


def classical_reconstruct(
    coded: np.ndarray,
    bank: PSFBank,
    noise_sigma: float = 0.01,
    window: int = 15,
    smoothness: float = 1.0,
    device: str = "cpu",
) -> ClassicalResult:
    """Depth and all-in-focus image from one coded-aperture photo (classical baseline).

    Args:
        coded: [H, W, C] float image on [0, 1], C = 1 or 3 (a mono image needs ``[..., None]``).
            A C = 1 bank blurs every channel alike; a C = 3 bank needs a 3-channel image.
        bank: PSF bank; H and W must be at least the PSF size.
        noise_sigma: std of the sensor noise on [0, 1] intensities (> 0); sets the noise
            floor of the likelihood and the Wiener regularisation ``(noise_sigma / s)^2``.
        window: odd side in pixels of the box window that averages the per-pixel evidence.
        smoothness: scale of the label-smoothing penalties (0 = per-pixel argmin).
        device: torch device for the FFTs and the smoothing (``"cpu"``, ``"cuda"``, ...).

    Returns:
        ``ClassicalResult`` with depth (metres), AIF, layer labels, the cost volume and the
        depth uncertainty (metres).

    Raises:
        ValueError: wrong rank or channel count, a colour bank with a mono image, an image
            smaller than the PSF, NaN/Inf pixels, values outside [0, 1], bad parameters.

    Example:
        >>> import numpy as np
        >>> from codedap_depth.optics import PSFBank
        >>> psfs = np.zeros((2, 1, 3, 3), np.float32); psfs[0, 0, 1, 1] = 1; psfs[1, 0] = 1 / 9
        >>> bank = PSFBank(psfs=psfs, depths=np.array([1.0, 2.0], np.float32))
        >>> out = classical_reconstruct(np.full((8, 8, 1), 0.5, np.float32), bank)
        >>> out.depth.shape, out.aif.shape, out.layer.dtype, out.cost.shape, out.uncertainty.shape
        ((8, 8), (8, 8, 1), dtype('int16'), (2, 8, 8), (8, 8))
    """
    image = _checked_image(coded, bank, noise_sigma, window, smoothness)
    h, w, _ = image.shape
    solver = ClassicalSolver(bank, h, w, window, smoothness, device)
    y = torch.from_numpy(image).to(solver.device).permute(2, 0, 1)  # [C, H, W]
    inv_depth, aif, labels, cost = solver(y, noise_sigma)
    depth = (1.0 / inv_depth).float()
    spread = layer_spread(cost, solver.layer_depths, depth)
    return ClassicalResult(
        depth=depth.cpu().numpy(),
        aif=aif.permute(1, 2, 0).contiguous().cpu().numpy(),
        layer=labels.to(torch.int16).cpu().numpy(),
        cost=cost.cpu().numpy(),
        uncertainty=spread.cpu().numpy(),
    )


class ClassicalSolver:
    """The classical reconstruction for one bank and frame size, as device tensors.

    What depends only on the bank and the frame size (PSF spectra on the filter-design grid,
    the taper, the FFT size) is prepared once; ``__call__`` does everything else on the device
    and never waits for it, so it can be captured in a CUDA graph (the sampler's warm start).

    Args:
        bank: PSF bank.
        height, width: frame size, pixels.
        window: odd side (pixels) of the evidence window.
        smoothness: scale of the SGM penalties (0 = per-pixel argmin).
        device: torch device.
    """

    def __init__(self, bank: PSFBank, height: int, width: int, window: int = 15,
                 smoothness: float = 1.0, device: str | torch.device = "cpu") -> None:
        self.bank, self.window, self.smoothness = bank, window, smoothness
        self.device = torch.device(device)
        self.radius = filter_radius(bank.size, max(height, width))
        pad = 2 * (self.radius + bank.size)
        self.fft_shape = (fast_fft_length(height + pad), fast_fft_length(width + pad))
        n = fast_fft_length(3 * self.radius)  # 288 for r = 91: as accurate as 512, 3x faster
        self.design_grid = (n, n)
        psfs = torch.from_numpy(bank.psfs).to(self.device, torch.float64)
        self.design_otf = psf_spectra(psfs, self.design_grid)
        self.design_grad2 = _gradient_power(self.design_grid).to(self.device)
        self.design_mean = _spectrum_weights(self.design_grid).to(self.device)
        self.layer_depths = torch.from_numpy(bank.depths).to(self.device, torch.float32)
        self.layer_inv = 1.0 / self.layer_depths.double()
        scales = torch.tensor((*PRIOR_SCALES, AIF_SCALE), dtype=torch.float64)
        self.scale2 = scales.to(self.device).view(-1, 1, 1, 1, 1) ** 2
        offsets = torch.arange(-self.radius, self.radius + 1, dtype=torch.float64)
        distance = torch.sqrt(offsets[:, None] ** 2 + offsets[None, :] ** 2)
        taper = 0.5 + 0.5 * torch.cos(torch.pi * distance / (self.radius + 1))
        self.taper = (taper * (distance <= self.radius)).to(self.device)  # step 5

    def __call__(
        self, y: torch.Tensor, noise_sigma: float | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct one frame.

        Args:
            y: [C, H, W] coded image on the device, [0, 1] intensities.
            noise_sigma: noise std ([0, 1] intensities), a float or a 0-d device tensor.

        Returns:
            inverse depth [H, W] float64 (1/m), AIF [C, H, W] in [0, 1], layer labels [H, W]
            (long) and the cost volume [K, H, W] (nats per pixel, before smoothing).
        """
        h, w = y.shape[-2:]
        fft_shape = self.fft_shape
        spectrum = torch.fft.rfft2(_periodic_pad(y, fft_shape))  # [C, Hf, Wr]

        # (3)-(6) per prior scale: truncated whitening, window energy and log-determinant; each
        # window keeps the scale that explains it best.
        filters = self._filters(noise_sigma)
        cost = torch.full((self.bank.num_depths, h, w), float("inf"), device=y.device)
        for energy, logdet in self._scale_energies(spectrum, filters, y.shape):
            cost = torch.minimum(cost, 0.5 * (box_filter(energy, self.window) + logdet))

        # Label smoothing (semi-global matching), then parabola refinement in inverse depth.
        aggregated = _semi_global(cost, y.mean(dim=0), self.smoothness)
        labels = aggregated.argmin(dim=0)  # [H, W]
        inv_depth = _refine_inverse_depth(aggregated.double(), labels, self.layer_inv)

        # (2) AIF: truncated Wiener deconvolution per layer, blended by the two-layer split.
        otf = _kernel_spectra(filters.deconvolve[-1], fft_shape)
        sharp = torch.fft.irfft2(otf * spectrum, s=fft_shape)[..., :h, :w]  # [K, C, H, W]
        weights = layer_weights(inv_depth[None, None], self.layer_inv).float()[0]  # [K, H, W]
        aif = (weights.unsqueeze(1) * sharp).sum(dim=0).clamp(0, 1)  # [C, H, W]
        return inv_depth, aif, labels, cost

    def scale_energies(
        self, y: torch.Tensor, noise_sigma: float | torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The evidence before any pooling, per prior scale of ``PRIOR_SCALES``: the whitened
        energy of every pixel under every layer, [K, H, W] (nats x 2, summed over channels),
        and the layer's log-determinant, [K, 1, 1]. ``__call__``'s cost is
        ``min over scales of 0.5 (box(energy) + logdet)``; other poolings start from here."""
        spectrum = torch.fft.rfft2(_periodic_pad(y, self.fft_shape))
        return list(self._scale_energies(spectrum, self._filters(noise_sigma), y.shape))

    def _scale_energies(
        self, spectrum: torch.Tensor, filters: _Filters, shape: torch.Size
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(energy [K, H, W], logdet [K, 1, 1]) per prior scale from the padded frame's
        spectrum [C, Hf, Wr] (steps 3-4 of the module docstring)."""
        c, h, w = shape
        repeat = c if self.bank.channels == 1 else 1  # a mono bank scores every channel alike
        for i in range(len(PRIOR_SCALES)):
            otf = _kernel_spectra(filters.whiten[i], self.fft_shape)  # [K, Cb, Hf, Wr]
            whitened = torch.fft.irfft2(otf * spectrum, s=self.fft_shape)[..., :h, :w]
            energy = (whitened.square() / filters.expected[i][..., None, None]).sum(dim=1)
            yield energy, repeat * filters.logdet[i].sum(dim=1)[:, None, None]

    def _filters(self, noise_sigma: float | torch.Tensor) -> _Filters:
        """Truncated whitening and Wiener kernels of every layer and prior scale (designed in
        float64 on the device; steps 1, 2 and 5 of the module docstring).

        The ideal filters are built on a grid about three radii wide, their impulse responses
        cut to ``radius`` with a raised-cosine taper, the whitener made zero-mean and the
        Wiener kernel renormalised to sum 1 (so a flat region stays flat).
        """
        grid, radius, otf = self.design_grid, self.radius, self.design_otf
        power, scale2 = otf.real**2 + otf.imag**2, self.scale2
        sigma2 = noise_sigma**2
        variance = power * scale2 / self.design_grad2.clamp(min=1e-12) + sigma2  # S_k, step 1
        whitener = variance.rsqrt() * (self.design_mean > 0)  # no DC
        wiener = otf.conj() / (power + sigma2 / scale2 * self.design_grad2)  # step 2
        n = grid[0]
        crop = slice(n // 2 - radius, n // 2 + radius + 1)

        def truncate(response: torch.Tensor) -> torch.Tensor:
            impulse = torch.fft.fftshift(torch.fft.irfft2(response, s=grid), dim=(-2, -1))
            return impulse[..., crop, crop] * self.taper

        whiten = truncate(whitener)
        whiten = whiten - whiten.mean(dim=(-2, -1), keepdim=True)
        deconvolve = truncate(wiener)
        deconvolve = deconvolve / deconvolve.sum(dim=(-2, -1), keepdim=True)
        response = _kernel_spectra(whiten, grid)
        expected = ((response.real**2 + response.imag**2) * variance * self.design_mean).sum(
            dim=(-2, -1))
        return _Filters(
            whiten=whiten.float(),
            expected=expected.float(),
            logdet=(torch.log(variance) * self.design_mean).sum(dim=(-2, -1)).float(),
            deconvolve=deconvolve.float(),
        )


def layer_spread(cost: torch.Tensor, layer_depths: torch.Tensor, depth: torch.Tensor,
                 temperature: float = SPREAD_TEMPERATURE) -> torch.Tensor:
    """Depth uncertainty (metres) of an estimate from the layer posterior of the cost volume.

    The window-averaged cost ``c_k`` (nats per pixel, ``ClassicalSolver``) gives each pixel a
    posterior over the bank's layers, ``p_k ~ exp(-temperature * c_k)``: ``temperature`` is how
    many independent pixels a window's evidence counts as. The uncertainty is the RMS distance
    of that posterior from the estimate, ``sqrt(sum_k p_k (d_k - depth)^2)``: its spread plus
    how far the estimate lies from it. Flat evidence (no texture) gives a wide spread; it does
    not see errors the evidence itself is sure of (a smooth texture read at the wrong blur).

    Args:
        cost: [K, H, W] cost volume, nats per pixel.
        layer_depths: [K] depths of the layers, metres.
        depth: [..., H, W] depth estimate(s), metres.
        temperature: independent pixels per window (> 0).

    Returns:
        [..., H, W] float32 std, metres.
    """
    posterior = torch.softmax(-temperature * cost.float(), dim=0)  # [K, H, W]
    offset = layer_depths.float().view(-1, 1, 1) - depth.float().unsqueeze(-3)  # [..., K, H, W]
    return (posterior * offset.square()).sum(dim=-3).sqrt()


def filter_radius(psf_size: int, frame_size: int) -> int:
    """Radius in pixels of the truncated whitening and Wiener filters: 4.5 PSF sizes, at most
    half the frame's longer side (a filter longer than the frame only mixes in its padding),
    and >= 8 (step 5 of the module docstring).

    >>> filter_radius(21, 320), filter_radius(21, 64), filter_radius(3, 320)
    (91, 32, 10)
    """
    return max(8, min(9 * (psf_size // 2) + 1, frame_size // 2))


@dataclass(frozen=True)
class _Filters:
    """Truncated per-layer filters for ``N`` prior scales (float32, on the device).

    Attributes:
        whiten: [N, K, Cb, 2r+1, 2r+1] zero-mean whitening kernels (``S_k^-1/2``, truncated).
        expected: [N, K, Cb] expected squared whitened output per pixel under layer k's model.
        logdet: [N, K, Cb] ``mean log S_k`` over the non-DC frequencies.
        deconvolve: [N, K, Cb, 2r+1, 2r+1] Wiener deconvolution kernels, each summing to 1.
    """

    whiten: torch.Tensor
    expected: torch.Tensor
    logdet: torch.Tensor
    deconvolve: torch.Tensor


def _checked_image(
    coded: np.ndarray, bank: PSFBank, noise_sigma: float, window: int, smoothness: float
) -> np.ndarray:
    """Validate the arguments; return the image as contiguous float32 clipped to [0, 1]."""
    image = check_coded_image(coded, bank, RANGE_TOLERANCE)
    if not (np.isfinite(noise_sigma) and noise_sigma > 0):
        raise ValueError(f"noise_sigma must be a positive number, got {noise_sigma!r}")
    if int(window) != window or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive integer, got {window!r}")
    if not (np.isfinite(smoothness) and smoothness >= 0):
        raise ValueError(f"smoothness must be >= 0, got {smoothness!r}")
    return image


def _periodic_pad(y: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Extend [C, H, W] to [C, *shape] so the frame wraps smoothly (fewer FFT edge artefacts).

    The image stays at the top-left; the extra columns, then rows, ramp linearly from the last
    column (row) back to the first, so the periodic image has no jump at the seam.
    """
    h, w = y.shape[-2:]
    t = torch.arange(1, shape[1] - w + 1, device=y.device, dtype=y.dtype) / (shape[1] - w + 1)
    y = torch.cat([y, y[..., -1:] * (1 - t) + y[..., :1] * t], dim=-1)
    t = torch.arange(1, shape[0] - h + 1, device=y.device, dtype=y.dtype) / (shape[0] - h + 1)
    t = t[:, None]
    return torch.cat([y, y[..., -1:, :] * (1 - t) + y[..., :1, :] * t], dim=-2)


def _gradient_power(shape: tuple[int, int]) -> torch.Tensor:
    """``|Gx|^2 + |Gy|^2`` (float64) of forward differences on the real-FFT grid of ``shape``."""
    fy = torch.fft.fftfreq(shape[0], dtype=torch.float64)
    fx = torch.fft.rfftfreq(shape[1], dtype=torch.float64)
    return 4 * torch.sin(torch.pi * fy)[:, None] ** 2 + 4 * torch.sin(torch.pi * fx) ** 2


def _kernel_spectra(kernels: torch.Tensor, fft_shape: tuple[int, int]) -> torch.Tensor:
    """Real FFTs of centred, odd-sized [..., S, S] kernels on ``fft_shape``, centre at (0, 0).

    Same result as ``forward.psf_spectra``; the kernel's quadrants are written to the grid's
    corners directly instead of rolling the whole grid.
    """
    r = kernels.shape[-1] // 2
    grid = kernels.new_zeros(*kernels.shape[:-2], *fft_shape)
    grid[..., : r + 1, : r + 1] = kernels[..., r:, r:]
    grid[..., : r + 1, -r:] = kernels[..., r:, :r]
    grid[..., -r:, : r + 1] = kernels[..., :r, r:]
    grid[..., -r:, -r:] = kernels[..., :r, :r]
    return torch.fft.rfft2(grid)


def _spectrum_weights(shape: tuple[int, int]) -> torch.Tensor:
    """[Hf, Wr] float64 weights that turn a sum over a real-FFT grid of ``shape`` into the mean
    over the full 2-D spectrum, excluding DC (infinite prior variance, the same for every
    layer): columns mirrored by the real FFT count twice."""
    weight = torch.full((shape[1] // 2 + 1,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if shape[1] % 2 == 0:
        weight[-1] = 1.0
    weight = weight.expand(shape[0], -1).clone()
    weight[0, 0] = 0.0
    return weight / weight.sum()


def box_filter(values: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window`` x ``window`` box of each [K, H, W] slice, edges replicated."""
    if window == 1:
        return values
    r = window // 2
    padded = torch.nn.functional.pad(values[None], (r, r, r, r), mode="replicate")[0]
    padded = torch.nn.functional.avg_pool2d(padded, (window, 1), stride=1)
    return torch.nn.functional.avg_pool2d(padded, (1, window), stride=1)


def _semi_global(cost: torch.Tensor, luminance: torch.Tensor, smoothness: float) -> torch.Tensor:
    """Semi-global matching over 4 scan directions; returns the mean path cost [K, H, W].

    Each path recursion is ``L(p, k) = C(p, k) + min(L(q, k), L(q, k +- 1) + P1,
    min_j L(q, j) + P2(p, q)) - min_j L(q, j)`` with ``q`` the previous pixel on the path and
    ``P2`` lowered across luminance edges: ``P1 + (P2 - P1) exp(-|I_p - I_q| / _EDGE_SCALE)``.
    The four directions run as one batch of paths, padded to the longer side.
    """
    if smoothness == 0:
        return cost
    k, h, w = cost.shape
    p1, p2 = _P1 * smoothness, _P2 * smoothness
    p2_x = p1 + (p2 - p1) * torch.exp(-(luminance[:, 1:] - luminance[:, :-1]).abs() / _EDGE_SCALE)
    p2_y = p1 + (p2 - p1) * torch.exp(-(luminance[1:] - luminance[:-1]).abs() / _EDGE_SCALE)
    rows = cost.permute(2, 0, 1)  # [W, K, H]: paths along x
    cols = cost.permute(1, 0, 2)  # [H, K, W]: paths along y
    side = max(h, w)
    paths = cost.new_zeros(4, side, k, side)
    penalties = cost.new_zeros(4, side - 1, side)
    for d, (path, penalty) in enumerate(((rows, p2_x.T), (rows.flip(0), p2_x.T.flip(0)),
                                         (cols, p2_y), (cols.flip(0), p2_y.flip(0)))):
        paths[d, : path.shape[0], :, : path.shape[2]] = path
        penalties[d, : penalty.shape[0], : penalty.shape[1]] = penalty
    scanned = _scan(paths, p1, penalties)
    along_x = scanned[0, :w, :, :h] + scanned[1, :w, :, :h].flip(0)  # [W, K, H]
    along_y = scanned[2, :h, :, :w] + scanned[3, :h, :, :w].flip(0)  # [H, K, W]
    return (along_x.permute(1, 2, 0) + along_y.permute(1, 0, 2)) / 4


def _scan(cost: torch.Tensor, p1: float, p2: torch.Tensor) -> torch.Tensor:
    """SGM passes along the second axis of [D, N, K, M] (D independent path sets); ``p2`` is
    [D, N-1, M], the large-jump penalty between consecutive steps."""
    out = torch.empty_like(cost)
    previous = cost[:, 0]
    out[:, 0] = previous
    inf = torch.full_like(previous[:, :1], float("inf"))
    for i in range(1, cost.shape[1]):
        best = previous.amin(dim=1, keepdim=True)  # [D, 1, M]
        step = torch.minimum(torch.cat([previous[:, 1:], inf], dim=1),
                             torch.cat([inf, previous[:, :-1]], dim=1))
        candidate = torch.minimum(torch.minimum(previous, step + p1), best + p2[:, i - 1, None])
        previous = cost[:, i] + candidate - best
        out[:, i] = previous
    return out


def _refine_inverse_depth(
    cost: torch.Tensor, labels: torch.Tensor, layer_inv: torch.Tensor
) -> torch.Tensor:
    """Vertex of the parabola through the costs of ``labels`` and its neighbours, in 1/m.

    ``cost`` is [K, H, W], ``layer_inv`` [K] decreasing inverse depths (any spacing). End
    layers and non-convex triples keep the layer's own inverse depth. Returns float64 [H, W].
    """
    k = cost.shape[0]
    if k < 3:
        return layer_inv[labels]
    inner = labels.clamp(1, k - 2)
    c0, c1, c2 = (cost.gather(0, (inner + d)[None])[0] for d in (-1, 0, 1))
    u0, u1, u2 = layer_inv[inner - 1], layer_inv[inner], layer_inv[inner + 1]
    # Parabola through (u0, c0), (u1, c1), (u2, c2): vertex = u1 - 0.5 * num / den.
    num = (u1 - u0) ** 2 * (c1 - c2) - (u1 - u2) ** 2 * (c1 - c0)
    den = (u1 - u0) * (c1 - c2) - (u1 - u2) * (c1 - c0)
    convex = (den.abs() > 1e-12) & (labels == inner) & (c1 <= c0) & (c1 <= c2)
    vertex = u1 - 0.5 * num / torch.where(convex, den, torch.ones_like(den))
    vertex = torch.minimum(torch.maximum(vertex, u2), u0)
    return torch.where(convex, vertex, layer_inv[labels])
