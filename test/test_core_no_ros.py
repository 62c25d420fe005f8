# SPDX-License-Identifier: Apache-2.0
"""The core (everything outside codedap_depth/ros/) imports no ROS module."""

import pkgutil
import subprocess
import sys

import codedap_depth

CORE = sorted(
    m.name for m in pkgutil.walk_packages(codedap_depth.__path__, "codedap_depth.")
    if not m.name.startswith("codedap_depth.ros")
)


def test_core_modules_import_without_ros():
    assert "codedap_depth.sampler" in CORE and "codedap_depth.bags.rosbag" in CORE
    code = (
        "import importlib, sys\n"
        f"for name in {CORE!r}:\n"
        "    importlib.import_module(name)\n"
        "ros = sorted(m for m in sys.modules if m.split('.')[0] in (\n"
        "    'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'rosidl_runtime_py',\n"
        "    'rpyutils', 'launch', 'launch_ros'))\n"
        "print(ros)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]", result.stdout
