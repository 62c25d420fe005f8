# SPDX-License-Identifier: Apache-2.0
"""The camera/noise mismatch figure: every method against the noise level, through the
camera the U-Net was trained for and through another one.

Usage::

    python benchmarks/mismatch_figure.py benchmarks/results/mismatch_h200_s19/results.tgz \
        --out docs/mismatch.png --json /tmp/mismatch.json

``RESULTS`` is the ``results.tgz`` of ``tools/gpu_eval.sh`` or its extracted ``runs/`` folder;
the four ``codedap-depth eval`` runs ``eval_{dev,heldout}_{camera,camera_b}/results.json`` are
read from it (``camera``: ``config/camera.yaml``, the camera the U-Net was trained for, "matched
camera"; ``camera_b``: ``config/camera_b.yaml``, "mismatched camera"). Each (set, camera,
noise level, method) is averaged over its scenes and seeds.

Draws a 2x4 grid (rows: AbsRel, AIF PSNR; columns: dev/camera, dev/camera_b, heldout/camera,
heldout/camera_b; x: noise sigma, log axis) with a dotted line at the noise level the shipped
U-Net was trained at (its weights' ``config.json``, ``_trained_for``), prints a markdown table
of the means and, with ``--json``, writes them.
"""

from __future__ import annotations

import argparse
import json
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from codedap_depth.regressor.loading import CONFIG_FILE, WEIGHTS_DIR  # noqa: E402

SETS = ("dev", "heldout")
CAMERAS = {"camera": "matched camera", "camera_b": "mismatched camera (camera_b)"}
#: Averaged metrics: row key -> table header.
METRICS = {"depth_absrel": "AbsRel", "depth_median_rel": "median rel.", "delta1": "delta1",
           "aif_psnr_db": "AIF PSNR (dB)"}
#: Figure rows: metric and its y label.
PLOTTED = (("depth_absrel", "AbsRel (lower is better)"),
           ("aif_psnr_db", "AIF PSNR (dB, higher is better)"))
ROW_KEYS = ("scene", "method", "noise_sigma", "seed", "device", *METRICS)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

Run = tuple[str, str]  # (set, camera)
#: The four eval runs, in column order.
RUNS: tuple[Run, ...] = tuple((s, c) for s in SETS for c in CAMERAS)


def run_file(run: Run) -> str:
    """Path of a run's rows inside ``runs/``."""
    return f"eval_{run[0]}_{run[1]}/results.json"


def read_folder(folder: Path) -> dict[Run, tuple[str, str]]:
    """(file name, text) of every run's results.json in a ``runs/`` folder."""
    texts = {}
    for run in RUNS:
        path = folder / run_file(run)
        if not path.is_file():
            raise SystemExit(f"missing run: {path} does not exist")
        texts[run] = (str(path), path.read_text())
    return texts


def read_tarball(path: Path) -> dict[Run, tuple[str, str]]:
    """(file name, text) of every run's results.json in a ``results.tgz`` (``runs/...``)."""
    try:
        with tarfile.open(path) as archive:
            members = {m.name.removeprefix("./"): m for m in archive.getmembers() if m.isfile()}
            texts = {}
            for run in RUNS:
                name = f"runs/{run_file(run)}"
                if name not in members:
                    raise SystemExit(f"missing run: {path} holds no {name}")
                texts[run] = (f"{path}:{name}", archive.extractfile(members[name]).read().decode())
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as err:
        raise SystemExit(f"{path} is not a readable tar archive: {err}") from err
    return texts


def parse_rows(text: str, name: str) -> list[dict]:
    """A results.json's rows, each checked to hold every key of ``ROW_KEYS`` (metrics as
    numbers); SystemExit names ``name`` and what is wrong."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"{name} is not valid JSON: {err}") from err
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise SystemExit(f"{name}: expected a non-empty JSON list of row objects")
    for i, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise SystemExit(f"{name}: row {i} lacks {', '.join(missing)}")
        bad = [k for k in ("noise_sigma", *METRICS)
               if isinstance(row[k], bool) or not isinstance(row[k], int | float)]
        if bad:
            raise SystemExit(f"{name}: row {i} has non-numeric {', '.join(bad)}")
    return rows


def read_runs(source: Path) -> dict[Run, list[dict]]:
    """The rows of the four eval runs in a results.tgz or a ``runs/`` folder."""
    if source.is_dir():
        texts = read_folder(source)
    elif source.is_file():
        texts = read_tarball(source)
    else:
        raise SystemExit(f"no such results.tgz or runs/ folder: {source}")
    return {run: parse_rows(text, name) for run, (name, text) in texts.items()}


def mean_rows(runs: dict[Run, list[dict]]) -> list[dict]:
    """One mean per (set, camera, noise, method) over its scenes and seeds, in run order, then
    noise, then the methods' order of appearance."""
    means = []
    for (set_name, camera), rows in runs.items():
        groups: dict[tuple[float, str], list[dict]] = {}
        for row in rows:
            groups.setdefault((float(row["noise_sigma"]), row["method"]), []).append(row)
        methods = list(dict.fromkeys(r["method"] for r in rows))
        for noise, method in sorted(groups, key=lambda k: (k[0], methods.index(k[1]))):
            group = groups[(noise, method)]
            means.append({"set": set_name, "camera": camera, "noise_sigma": noise,
                          "method": method,
                          **{k: float(np.mean([r[k] for r in group])) for k in METRICS},
                          "seeds": len({r["seed"] for r in group}),
                          "scenes": len({r["scene"] for r in group}), "rows": len(group)})
    return means


def table(means: list[dict]) -> str:
    """Markdown table of the means."""
    lines = ["| set | camera | noise | method | " + " | ".join(METRICS.values()) + " | seeds |",
             "|" + "---|" * (5 + len(METRICS))]
    for m in means:
        values = " | ".join(f"{m[k]:.2f}" if k == "aif_psnr_db" else f"{m[k]:.3f}"
                            for k in METRICS)
        lines.append(f"| {m['set']} | {m['camera']} | {m['noise_sigma']:g} | {m['method']} | "
                     f"{values} | {m['seeds']} |")
    return "\n".join(lines)


def training_noise(weights_dir: Path = WEIGHTS_DIR) -> float:
    """The noise level the regressor's weights were trained at (``config.json``'s
    ``_trained_for``)."""
    path = weights_dir / CONFIG_FILE
    try:
        return float(json.loads(path.read_text())["_trained_for"]["noise_sigma"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: no training noise level (_trained_for.noise_sigma): "
                         f"{err!r}") from err


def devices(runs: dict[Run, list[dict]]) -> str:
    """The devices named by the rows, joined."""
    return ", ".join(sorted({str(r["device"]) for rows in runs.values() for r in rows}))


def seed_count(means: list[dict]) -> str:
    """"3 seeds", or the range when the groups differ ("1-3 seeds")."""
    counts = sorted({m["seeds"] for m in means})
    text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{text} seed{'s' if counts[-1] > 1 else ''}"


def panel_title(means: list[dict], run: Run) -> str:
    """Column title: set, its scene count and the camera."""
    scenes = max(m["scenes"] for m in means if (m["set"], m["camera"]) == run)
    return f"{run[0]} ({scenes} scenes)\n{CAMERAS[run[1]]}"


def draw_panel(ax: plt.Axes, means: list[dict], metric: str, methods: list[str],
               noise: float) -> None:
    """One metric against the noise level, a line per method, for one run's means."""
    for i, method in enumerate(methods):
        points = sorted((m["noise_sigma"], m[metric]) for m in means if m["method"] == method)
        if points:
            x, y = zip(*points, strict=True)
            ax.plot(x, y, marker=MARKERS[i % len(MARKERS)], color=f"C{i}", label=method)
    ax.axvline(noise, color="0.4", linestyle=":", label=f"U-Net training noise ({noise:g})")
    levels = sorted({m["noise_sigma"] for m in means})
    ax.set_xscale("log")
    ax.set_xticks(levels, [f"{v:g}" for v in levels])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(alpha=0.3)


def grid_figure(means: list[dict], plotted: Sequence[tuple[str, str]],
                draw: Callable[[plt.Axes, list[dict], str], None], xlabel: str,
                column_title: Callable[[Run], str]) -> tuple[plt.Figure, np.ndarray]:
    """A grid of panels: a row per ``plotted`` (metric, y label), a column per run of ``RUNS``;
    ``draw(ax, the run's means, metric)`` fills each panel."""
    fig, axes = plt.subplots(len(plotted), len(RUNS), figsize=(3.3 * len(RUNS), 6.4),
                             sharey="row", squeeze=False, layout="constrained")
    for col, run in enumerate(RUNS):
        subset = [m for m in means if (m["set"], m["camera"]) == run]
        for row, (metric, label) in enumerate(plotted):
            ax = axes[row, col]
            draw(ax, subset, metric)
            if row == 0:
                ax.set_title(column_title(run), fontsize=9)
            if row == len(plotted) - 1:
                ax.set_xlabel(xlabel)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
    return fig, axes


def save_figure(fig: plt.Figure, handles: list, title: str, path: str | Path) -> None:
    """One shared legend of ``handles`` under the grid, the title, and the PNG."""
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9,
               frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def results_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of both figure scripts: RESULTS, ``--out``, ``--json``, ``--methods``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("results", type=Path, help="results.tgz of tools/gpu_eval.sh, or runs/")
    parser.add_argument("--out", type=Path, required=True, help="figure (PNG)")
    parser.add_argument("--json", type=Path, help="also write what is plotted here")
    parser.add_argument("--methods", type=lambda v: v.split(","),
                        help="comma list of the methods to keep (default: all in the runs)")
    return parser


def mismatch_figure(means: list[dict], path: str | Path, noise: float, title: str) -> None:
    """The 2x4 grid (module docstring), one shared legend under it."""
    methods = list(dict.fromkeys(m["method"] for m in means))
    fig, axes = grid_figure(
        means, PLOTTED, lambda ax, subset, metric: draw_panel(ax, subset, metric, methods, noise),
        "noise sigma", lambda run: panel_title(means, run))
    save_figure(fig, axes[0, 0].get_legend_handles_labels()[0], title, path)


def main(argv: Sequence[str] | None = None) -> None:
    args = results_parser(__doc__.splitlines()[0]).parse_args(argv)
    runs = read_runs(args.results)
    means = [m for m in mean_rows(runs) if args.methods is None or m["method"] in args.methods]
    if not means:
        raise SystemExit(f"{args.results}: no rows of methods {args.methods}")
    noise = training_noise()
    device, seeds = devices(runs), seed_count(means)
    title = (f"Camera and noise mismatch ({device}; mean over scenes and {seeds}; "
             f"U-Net trained on the matched camera at noise {noise:g})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    mismatch_figure(means, args.out, noise, title)
    print(f"## Mismatch ({device}, {seeds}; {args.results})\n")
    print(table(means))
    print(f"\nwrote {args.out}")
    if args.json:
        report = {"source": str(args.results), "device": device, "training_noise": noise,
                  "means": means}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
