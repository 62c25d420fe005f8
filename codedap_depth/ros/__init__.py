# SPDX-License-Identifier: Apache-2.0
"""ROS 2 adapter: the depth node, message conversions, point clouds, diagnostics, bag replay.

The only part of the package that imports rclpy or ROS message modules; the maths lives in the
core and in ``codedap_depth.image_codec`` (pure numpy), which these modules wrap.
"""
