# SPDX-License-Identifier: Apache-2.0
"""Names every front-end shares: the node's topics, their message types, the step limit.

Imports nothing beyond the standard library, so the ROS adapter (``ros/``), the bag tools and the
command line can all use it without pulling in torch or rclpy. The method list and the step
presets are ``pipeline.METHODS``, ``pipeline.DEFAULT_STEPS`` and ``pipeline.QUALITY_STEPS``.
"""

from __future__ import annotations

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"

#: the node's inputs, relative to its namespace (``image_transport`` picks one image topic)
IMAGE_INPUT = "image_raw"
COMPRESSED_INPUT = "image_raw/compressed"
CAMERA_INFO_INPUT = "camera_info"

#: the node's outputs, relative to its namespace -> message type (README, ROS 2 node)
OUTPUT_TOPICS = {
    "depth/image": IMAGE,
    "depth/uncertainty": IMAGE,
    "aif/image": IMAGE,
    "depth/camera_info": CAMERA_INFO,
    "aif/camera_info": CAMERA_INFO,
    "points": POINTCLOUD2,
}

#: most sampler steps: one DDIM step per timestep of the prior's 1000-step training schedule
#: (``pipeline.ReconstructionConfig`` accepts 1 ... MAX_STEPS; a test checks they agree)
MAX_STEPS = 1000
