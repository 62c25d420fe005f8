# SPDX-License-Identifier: Apache-2.0
"""Node start-up: fatal configuration errors are one clear line naming the file, exit non-zero;
the launch file (started when launch_ros exists, otherwise checked statically)."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "depth.launch.py"


def start(*args: str) -> subprocess.Popen:
    """``python -m args``; it gets SIGTERM if this process dies."""
    from codedap_depth.ros.session import exit_with_parent

    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
                            preexec_fn=exit_with_parent)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("startup")
    unnormalised = tmp / "unnormalised.npz"
    psfs = np.ones((4, 1, 5, 5), np.float32)  # each PSF sums to 25, not 1
    np.savez(unnormalised, psfs=psfs, depths=np.array([1, 2, 3, 4], np.float32))
    garbage = tmp / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    bad_crc, bad_deflate = corrupt_archives(tmp)
    bad_yaml = tmp / "broken_params.yaml"
    bad_yaml.write_text("codedap_depth: [\n")
    return {"unnormalised": unnormalised, "garbage": garbage, "bad_yaml": bad_yaml,
            "bad_crc": bad_crc, "bad_deflate": bad_deflate,
            "missing": tmp / "missing.npz", "missing_yaml": tmp / "missing.yaml"}


def corrupt_archives(tmp: Path) -> tuple[Path, Path]:
    """A valid bank with one data byte flipped (stored member: bad CRC-32), and a compressed
    bank with its deflate stream damaged; both still pass ``zipfile.is_zipfile``."""
    import zipfile

    psfs = np.full((4, 1, 5, 5), 1 / 25, np.float32)
    depths = np.array([1, 2, 3, 4], np.float32)
    stored, deflated = tmp / "bad_crc.npz", tmp / "bad_deflate.npz"
    np.savez(stored, psfs=psfs, depths=depths)
    np.savez_compressed(deflated, psfs=np.random.default_rng(0).random(psfs.shape), depths=depths)
    for path, offset in ((stored, 200), (deflated, 40)):
        data = bytearray(path.read_bytes())
        start = data.index(b"psfs.npy") + len(b"psfs.npy")  # the first member's data
        for i in range(start + offset, start + offset + 16):
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
        assert zipfile.is_zipfile(path)
    return stored, deflated


def fatal_cases(files: dict[str, Path]) -> list[tuple[list[str], list[str]]]:
    node = ["codedap_depth.ros.node"]
    return [
        (node + ["--ros-args", "-p", f"psf_file:={files['missing']}"],
         [str(files["missing"]), "not found"]),
        (node + ["--ros-args", "-p", f"psf_file:={files['unnormalised']}"],
         [str(files["unnormalised"]), "sum to 1"]),
        (node + ["--ros-args", "-p", f"psf_file:={files['garbage']}"],
         [str(files["garbage"])]),
        (node + ["--ros-args", "-p", f"psf_file:={files['bad_crc']}"],
         [str(files["bad_crc"]), "Bad CRC-32"]),
        (node + ["--ros-args", "-p", f"psf_file:={files['bad_deflate']}"],
         [str(files["bad_deflate"]), "decompressing"]),
        (node + ["--ros-args", "-p", f"camera_file:={files['missing_yaml']}"],
         [str(files["missing_yaml"]), "cannot read camera file"]),
        (node + ["--params", str(files["missing_yaml"])],
         [str(files["missing_yaml"]), "parameter file not found"]),
        (node + ["--params", str(files["bad_yaml"])],
         [str(files["bad_yaml"]), "bad ROS arguments"]),
        (node + ["--ros-args", "-p", "method:=magic"], ["method must be one of"]),
        (node + ["--ros-args", "-p", "qos_overrides./image_raw.subscription.reliability:=foo"],
         ["invalid QoS override", "reliability", "foo"]),
    ]


def test_fatal_start_errors_are_one_clear_message(bad_files) -> None:
    cases = fatal_cases(bad_files)
    # two at a time: each pays the import time, and ten parallel starts on CI's two cores once
    # ran past the timeout
    for first in range(0, len(cases), 2):
        batch = cases[first:first + 2]
        processes = [start(*args) for args, _ in batch]
        for (args, expected), proc in zip(batch, processes, strict=True):
            check_fatal(args, expected, proc)


def check_fatal(args: list[str], expected: list[str], proc: subprocess.Popen) -> None:
    """The process exits 1 with exactly one FATAL line holding every ``expected`` text."""
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired as err:  # once seen: a start spinning at full CPU
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"{args} still running after 120 s: {stdout} {stderr}") from err
    assert proc.returncode == 1, (args, stdout, stderr)
    assert "Traceback" not in stderr, stderr
    fatal = [line for line in stderr.splitlines() if "FATAL" in line]
    assert len(fatal) == 1, (args, stderr)
    for text in expected:
        assert text in fatal[0], (args, fatal[0])


def test_cuda_device_without_cuda_is_fatal() -> None:
    import torch

    device = f"cuda:{torch.cuda.device_count()}"  # one past the last device, or cuda:0 on CPU
    proc = start("codedap_depth.ros.node", "--ros-args", "-p", f"device:={device}")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in stderr
    assert f"device {device} requested" in stderr


def test_command_line_entry_forwards_to_the_node(bad_files) -> None:
    """``codedap-depth node --params FILE`` runs the node's own argument handling."""
    proc = start("codedap_depth.cli", "node", "--params", str(bad_files["missing_yaml"]))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert f"{bad_files['missing_yaml']}: parameter file not found" in stderr, stderr


def test_launch_file_declares_its_arguments_and_uses_params_yaml() -> None:
    source = LAUNCH.read_text()
    tree = ast.parse(source, filename=str(LAUNCH))  # compiles as Python
    compile(tree, str(LAUNCH), "exec")
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    declared = {
        call.args[0].value for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument"
    }
    assert {"params_file", "namespace", "image_topic", "lifecycle"} <= declared
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert {"config", "params.yaml", "depth_node", "codedap_depth", "image_raw",
            "--lifecycle"} <= strings
    assert (REPO / "config" / "params.yaml").is_file()


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros is not installed (PyPI-wheel ROS); the launch file is "
                    "checked statically and `codedap-depth node --params` is tested instead")
def test_launch_file_starts_the_node(tmp_path) -> None:
    """With a sourced ROS 2 and this package installed: launch it and see its diagnostics."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("codedap_depth")
    except PackageNotFoundError:
        pytest.skip("codedap_depth is not installed in an ament prefix (colcon build)")
    script = tmp_path / "run_launch.py"
    script.write_text(f"""
import sys
import launch
from launch.actions import IncludeLaunchDescription, TimerAction, Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
ld = launch.LaunchDescription([
    IncludeLaunchDescription(PythonLaunchDescriptionSource({str(LAUNCH)!r}),
                             launch_arguments={{"namespace": "launched",
                                               "image_topic": "coded"}}.items()),
    TimerAction(period=25.0, actions=[Shutdown()]),
])
service = launch.LaunchService()
service.include_launch_description(ld)
sys.exit(service.run())
""")
    launched = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    stdout, _ = launched.communicate(timeout=60)
    assert "ready:" in stdout, stdout
    assert "/launched/codedap_depth" in stdout or "launched.codedap_depth" in stdout, stdout
