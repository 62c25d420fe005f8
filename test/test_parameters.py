# SPDX-License-Identifier: Apache-2.0
"""One source of truth for the node's parameters and the names front-ends share.

``parameters.NodeSettings`` is the schema; ``config/params.yaml`` must list the same values (so
``ros2 run`` and ``ros2 launch`` behave alike), the node must declare exactly the schema, and the
step limit and camera defaults must agree with the code and files that use them.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from codedap_depth.names import MAX_STEPS
from codedap_depth.optics import Camera, load_camera
from codedap_depth.parameters import NodeSettings, spec
from codedap_depth.pipeline import METHODS, ReconstructionConfig

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "config" / "params.yaml"


def params_yaml() -> dict:
    (key, section), = yaml.safe_load(PARAMS.read_text()).items()
    assert key == "/**/codedap_depth"
    return section["ros__parameters"]


def test_params_yaml_equals_the_schema_defaults_by_value_and_type() -> None:
    values, defaults = params_yaml(), dataclasses.asdict(NodeSettings())
    assert list(values) == list(defaults)  # same names, same order
    for name, default in defaults.items():
        assert values[name] == default and type(values[name]) is type(default), name


def test_params_yaml_comments_give_the_schema_units_and_methods() -> None:
    comments = {}
    for line in PARAMS.read_text().splitlines():
        match = re.match(r"\s+(\w+): [^#]*#\s*(.*)", line)
        if match:
            comments[match[1]] = match[2]
    for parameter in spec():
        if parameter.unit:
            assert comments[parameter.name].startswith(parameter.unit), parameter.name
    assert " | ".join(METHODS[:3]) in comments["method"] and all(
        m in comments["method"] for m in METHODS)


def test_schema_entries_are_complete() -> None:
    for parameter in spec():
        assert parameter.description, parameter
        if parameter.range is not None:
            low, high = parameter.range
            assert low <= parameter.default <= high, parameter


def test_step_limit_is_the_one_the_reconstructor_accepts() -> None:
    (steps,) = [p for p in spec() if p.name == "steps"]
    assert steps.range == (1, MAX_STEPS)
    ReconstructionConfig(steps=MAX_STEPS)
    with pytest.raises(ValueError, match=f"1..{MAX_STEPS}"):
        ReconstructionConfig(steps=MAX_STEPS + 1)


def test_camera_defaults_equal_config_camera_yaml() -> None:
    shipped = load_camera(REPO / "config" / "camera.yaml")
    for field in dataclasses.fields(Camera):
        if field.default is not dataclasses.MISSING or field.default_factory is not \
                dataclasses.MISSING:
            default = field.default if field.default is not dataclasses.MISSING else \
                field.default_factory()
            assert getattr(shipped, field.name) == default, field.name


def test_node_declares_the_schema_with_its_ranges_and_units(ros) -> None:
    from rclpy.node import Node

    from codedap_depth.ros.settings import LiveSettings

    node = ros.add(Node("schema_probe", context=ros.context))
    settings = LiveSettings(node)
    assert settings.current == NodeSettings()  # no overrides: params.yaml's values
    for parameter in spec():
        descriptor = node.describe_parameter(parameter.name)
        assert descriptor.read_only == parameter.read_only, parameter.name
        assert descriptor.description.startswith(parameter.description), parameter.name
        if parameter.unit:
            assert descriptor.description.endswith(f"({parameter.unit})"), parameter.name
        ranges = list(descriptor.integer_range) + list(descriptor.floating_point_range)
        if parameter.range is None:
            assert ranges == [], parameter.name
        else:
            (limits,) = ranges
            assert (limits.from_value, limits.to_value) == parameter.range, parameter.name
