# SPDX-License-Identifier: Apache-2.0
"""Quality against time per frame: every method's AbsRel and AIF PSNR against its median
seconds per frame, per set and camera, from one ``tools/gpu_eval.sh`` call.

Usage::

    python benchmarks/quality_time.py benchmarks/results/eval_h200_s22/results.tgz \
        --methods classical,dfd-dps:4,dfd-dps:20,dfd-dps:50 --out docs/quality_time.png \
        --json benchmarks/results/eval_h200_s22/quality_time.json

``RESULTS`` is read as by ``mismatch_figure.py`` (the four ``codedap-depth eval`` runs). Each
(set, camera, noise level, method) gives one point: the mean AbsRel and AIF PSNR over its
scenes and seeds, at the median of its frames' seconds (the first frame of a method also
captures its CUDA graph, so the median, not the mean). DFD-DPS's step counts of one noise
level are joined by a line in step order; methods without steps are single points. Draws a
2x4 grid (rows: AbsRel, AIF PSNR; columns as in the mismatch figure; x: seconds, log axis),
prints a markdown table and, with ``--json``, writes the points. Put only one call's rows in
one figure: times from different machines do not compare.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402
from mismatch_figure import (  # noqa: E402
    CAMERAS,
    MARKERS,
    Run,
    devices,
    grid_figure,
    mean_rows,
    read_runs,
    results_parser,
    save_figure,
)

#: Candidate x ticks (seconds); those within the data's range are labelled.
TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: Figure rows: metric and its y label.
PLOTTED = (("depth_absrel", "AbsRel (lower is better)"),
           ("aif_psnr_db", "AIF PSNR (dB, higher is better)"))


def median_seconds(runs: dict[Run, list[dict]]) -> dict[tuple[str, str, float, str], float]:
    """Median ``seconds`` per (set, camera, noise, method); SystemExit names the run and row
    whose ``seconds`` is missing or not a positive number."""
    groups: dict[tuple[str, str, float, str], list[float]] = {}
    for (set_name, camera), rows in runs.items():
        for i, row in enumerate(rows):
            value = row.get("seconds")
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise SystemExit(f"eval_{set_name}_{camera}: row {i} has no positive seconds "
                                 f"(got {value!r})")
            key = (set_name, camera, float(row["noise_sigma"]), row["method"])
            groups.setdefault(key, []).append(float(value))
    return {key: float(np.median(values)) for key, values in groups.items()}


def quality_points(runs: dict[Run, list[dict]], methods: list[str] | None) -> list[dict]:
    """The means of ``mismatch_figure.mean_rows`` with their median seconds, for ``methods``
    (all when None)."""
    seconds = median_seconds(runs)
    return [{**m, "seconds": seconds[(m["set"], m["camera"], m["noise_sigma"], m["method"])]}
            for m in mean_rows(runs) if methods is None or m["method"] in methods]


def step_count(method: str) -> int:
    """The steps of a ``name:steps`` method label (0 for a method without steps)."""
    return int(method.split(":")[1]) if ":" in method else 0


def table(points: list[dict]) -> str:
    """Markdown table of the points."""
    lines = ["| set | camera | noise | method | s/frame (median) | AbsRel | AIF PSNR (dB) |",
             "|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['set']} | {p['camera']} | {p['noise_sigma']:g} | {p['method']} | "
                     f"{p['seconds']:.3f} | {p['depth_absrel']:.3f} | {p['aif_psnr_db']:.2f} |")
    return "\n".join(lines)


class Styles(NamedTuple):
    """The figure's encodings, taken from all its points so that every panel and the legend
    agree: a colour per noise level, a marker per method."""

    noises: list[float]
    methods: list[str]


def styles_of(points: list[dict]) -> Styles:
    """The noise levels (sorted) and methods (in order of appearance) of ``points``."""
    return Styles(sorted({p["noise_sigma"] for p in points}),
                  list(dict.fromkeys(p["method"] for p in points)))


def draw_panel(ax: plt.Axes, points: list[dict], metric: str, styles: Styles) -> None:
    """One metric against seconds per frame: per noise level (a colour), DFD-DPS's step counts
    joined in step order, each method a marker."""
    methods = styles.methods
    for i, noise in enumerate(styles.noises):
        here = [p for p in points if p["noise_sigma"] == noise]
        stepped = sorted((p for p in here if step_count(p["method"])),
                         key=lambda p: step_count(p["method"]))
        if len(stepped) > 1:
            ax.plot([p["seconds"] for p in stepped], [p[metric] for p in stepped],
                    color=f"C{i}", alpha=0.6)
        for p in here:
            ax.plot(p["seconds"], p[metric], linestyle="none", color=f"C{i}",
                    marker=MARKERS[methods.index(p["method"]) % len(MARKERS)])
    ax.set_xscale("log")
    low, high = min(p["seconds"] for p in points), max(p["seconds"] for p in points)
    ticks = [t for t in TICKS if low / 1.5 <= t <= high * 1.5]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(alpha=0.3)


def legend_handles(styles: Styles) -> list:
    """One handle per noise level (colour) and per method (marker)."""
    return ([plt.Line2D([], [], color=f"C{i}", label=f"noise {n:g}") for i, n in
             enumerate(styles.noises)]
            + [plt.Line2D([], [], color="0.3", linestyle="none",
                          marker=MARKERS[j % len(MARKERS)], label=m)
               for j, m in enumerate(styles.methods)])


def quality_time_figure(points: list[dict], path: str | Path, title: str) -> None:
    """The 2x4 grid (module docstring), one shared legend under it."""
    styles = styles_of(points)
    fig, _ = grid_figure(points, PLOTTED,
                         lambda ax, subset, metric: draw_panel(ax, subset, metric, styles),
                         "seconds per frame (median)",
                         lambda run: f"{run[0]}\n{CAMERAS[run[1]]}")
    save_figure(fig, legend_handles(styles), title, path)


def main(argv: Sequence[str] | None = None) -> None:
    args = results_parser(__doc__.splitlines()[0]).parse_args(argv)
    runs = read_runs(args.results)
    points = quality_points(runs, args.methods)
    if not points:
        raise SystemExit(f"{args.results}: no rows of methods {args.methods}")
    device = devices(runs)
    title = f"Quality against time per frame ({device}; means over scenes and seeds)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    quality_time_figure(points, args.out, title)
    print(f"## Quality against time ({device}; {args.results})\n")
    print(table(points))
    print(f"\nwrote {args.out}")
    if args.json:
        report = {"source": str(args.results), "device": device, "points": points}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
