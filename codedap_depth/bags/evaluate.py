# SPDX-License-Identifier: Apache-2.0
"""Offline evaluation of a bag (``codedap-depth bag eval``): reconstruct every frame, pass it
through the node's output stage (``outputs.frame_outputs``), write the node's output topics into
a new bag plus ``metrics.json`` (against the ground-truth topics when present) and
``figure.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codedap_depth import messages
from codedap_depth.bags.rosbag import (
    CUSTOM_CAMERA,
    CUSTOM_NOISE,
    CUSTOM_SCENES,
    IMAGE_TOPIC,
    BagFrame,
    BagWriter,
    bag_custom_data,
    read_frames,
)
from codedap_depth.image_codec import bin_image, image_to_float, pack_points
from codedap_depth.optics import camera_for_size, camera_from_yaml, load_camera
from codedap_depth.outputs import FrameOutputs, OutputSettings, frame_outputs, working_intrinsics


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate_bag`` wrote.

    Attributes:
        frames: frames reconstructed.
        output_bag: bag with the node's output topics.
        metrics_path: ``metrics.json`` (rows per frame + their mean).
        figure_path: ``figure.png`` of the first frame.
        mean: mean of each numeric metric over frames (empty without ground truth).
    """

    frames: int
    output_bag: Path
    metrics_path: Path
    figure_path: Path
    mean: dict[str, float]


def evaluate_bag(
    bag: str | Path,
    out: str | Path,
    config=None,
    *,
    binning: int = 1,
    psf_file: str | Path | None = None,
    camera_file: str | Path | None = None,
    topic: str | None = None,
    storage: str | None = None,
    max_frames: int | None = None,
    outputs: OutputSettings | None = None,
) -> EvalResult:
    """Reconstruct every frame of ``bag`` offline and score it against the ground truth.

    Args:
        bag: input bag (e.g. from ``make_demo_bag``).
        out: output directory: ``outputs/`` (bag), ``metrics.json``, ``figure.png``.
        config: ``pipeline.ReconstructionConfig`` (default: its defaults).
        binning: block-average factor applied to frames (and ground truth) first.
        psf_file: PSF bank .npz; default: synthesised from the camera model.
        camera_file: camera YAML at the bag's resolution; default: the bag's recorded camera,
            else the package's config/camera.yaml.
        topic: image topic (see ``read_frames``).
        storage: output bag storage; default: the input's.
        max_frames: stop after this many frames.
        outputs: depth range, uncertainty filter and cloud stride (``outputs.frame_outputs``,
            as the node applies them); default: the node's defaults (config/params.yaml).
    """
    from codedap_depth.figures import panel_figure
    from codedap_depth.metrics import depth_metrics, psnr, ssim
    from codedap_depth.optics import load_bank, synthesize_bank
    from codedap_depth.parameters import NodeSettings, output_settings
    from codedap_depth.paths import share_file
    from codedap_depth.pipeline import ReconstructionConfig, Reconstructor

    config = config or ReconstructionConfig()
    outputs = outputs or output_settings(NodeSettings())
    bag, out = Path(bag), Path(out)
    custom = bag_custom_data(bag)
    if camera_file is not None:
        camera = load_camera(camera_file)
    elif CUSTOM_CAMERA in custom:
        camera = camera_from_yaml(custom[CUSTOM_CAMERA], f"{bag} custom_data")
    else:
        camera = load_camera(share_file("config/camera.yaml"))
    working = camera_for_size(camera, camera.width // binning, camera.height // binning)
    bank = load_bank(psf_file) if psf_file is not None else synthesize_bank(working)
    reconstructor = Reconstructor(bank, config)
    scenes = json.loads(custom.get(CUSTOM_SCENES, "[]"))
    noise = float(custom[CUSTOM_NOISE]) if CUSTOM_NOISE in custom else None
    storage = storage or ("mcap" if any(bag.glob("*.mcap")) else "sqlite3")
    out.mkdir(parents=True, exist_ok=True)
    output_bag = out / "outputs"
    if output_bag.exists():
        raise FileExistsError(f"{output_bag} exists; choose another --out")

    rows: list[dict] = []
    figure_panels = None
    with BagWriter(output_bag, storage) as writer:
        for frame in read_frames(bag, topic):
            if max_frames is not None and frame.index >= max_frames:
                break
            coded = bin_image(image_to_float(frame.pixels, frame.encoding), binning)
            if (coded.shape[1], coded.shape[0]) != (working.width, working.height):
                raise ValueError(
                    f"{bag}: frame {frame.index} is {frame.pixels.shape[1]}x"
                    f"{frame.pixels.shape[0]} px, binned by {binning} to {coded.shape[1]}x"
                    f"{coded.shape[0]}, but the camera model is {working.width}x{working.height}"
                )
            result = reconstructor(coded)
            K = working_intrinsics(frame.K, binning, working.fx, working.width, working.height)
            produced = frame_outputs(result, K, outputs)
            _write_outputs(writer, _namespace(topic or IMAGE_TOPIC), frame, produced)
            depth, sigma = produced.depth, produced.uncertainty
            row = {
                "frame": frame.index, "stamp_ns": frame.stamp_ns,
                "scene": scenes[frame.index] if frame.index < len(scenes) else bag.name,
                "method": config.method, "noise_sigma": noise, "steps": config.steps,
                "samples": config.samples, "seconds": result.seconds, "device": config.device,
            }
            gt = None
            if frame.depth_gt is not None:
                gt = bin_image(frame.depth_gt, binning, skip_nan=True)
                metrics = depth_metrics(depth, gt)
                row.update(depth_absrel=metrics.absrel, depth_rmse_m=metrics.rmse_m,
                           depth_mae_m=metrics.mae_m, delta1=metrics.delta1,
                           coverage=metrics.coverage)
            aif = produced.aif if produced.aif.shape[-1] == 3 else np.repeat(produced.aif, 3, -1)
            if frame.aif_gt is not None:
                truth = bin_image(frame.aif_gt, binning)
                row.update(aif_psnr_db=psnr(aif, truth), aif_ssim=ssim(aif, truth))
            rows.append(row)
            if figure_panels is None:
                figure_panels = _panels(coded, aif, depth, sigma, gt)
    if not rows:
        raise ValueError(f"{bag}: no frames on the image topic")
    numeric = [k for k, v in rows[0].items()
               if isinstance(v, float) and k not in ("noise_sigma",)]
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in numeric}
    metrics_path = out / "metrics.json"
    summary = {"bag": str(bag), "method": config.method, "binning": binning,
               "frames": len(rows), "mean": mean, "rows": rows}
    metrics_path.write_text(json.dumps(summary, indent=2) + "\n")
    figure_path = out / "figure.png"
    panel_figure(figure_panels, figure_path,
                 depth_limits=(float(bank.depths[0]), float(bank.depths[-1])))
    return EvalResult(len(rows), output_bag, metrics_path, figure_path, mean)


def _namespace(topic: str) -> str:
    return topic.rsplit("/", 1)[0]


def _write_outputs(writer: BagWriter, namespace: str, frame: BagFrame,
                   outputs: FrameOutputs) -> None:
    """The node's output topics for one frame, same stamp and frame_id as the input."""
    stamp, frame_id = frame.stamp_ns, frame.frame_id
    width, height = outputs.size
    written = {
        "depth/image": messages.image(outputs.depth, "32FC1", stamp, frame_id),
        "depth/uncertainty": messages.image(outputs.uncertainty, "32FC1", stamp, frame_id),
        "aif/image": messages.image(outputs.aif_pixels, outputs.aif_encoding, stamp, frame_id),
    }
    if outputs.K is not None:
        info = messages.camera_info(outputs.K, width, height, stamp, frame_id)
        written.update({"depth/camera_info": info, "aif/camera_info": info})
    if outputs.cloud is not None:
        written["points"] = messages.point_cloud(pack_points(outputs.cloud), stamp, frame_id)
    for topic, message in written.items():
        writer.write(f"{namespace}/{topic}", message, stamp)


def _panels(coded, aif, depth, sigma, gt) -> list[tuple[str, np.ndarray, str | None]]:
    panels = [
        ("coded input", coded if coded.ndim == 3 else coded[..., None], None),
        ("all-in-focus", aif, None),
        ("depth", depth, "m"),
        ("uncertainty", sigma, "m (std)"),
    ]
    if gt is not None:
        panels += [("depth GT", gt, "m"), ("|error|", np.abs(depth - gt), "m (abs)")]
    return panels
