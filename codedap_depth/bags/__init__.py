# SPDX-License-Identifier: Apache-2.0
"""rosbag2 tools built on the ``rosbags`` library (sqlite3 and MCAP storage; no rclpy here),
one module per job:

``rosbag``    reading and writing bags (messages from ``codedap_depth.messages``);
``demo_bag``  the demo bag of ``codedap-depth bag make``;
``evaluate``  the offline evaluation of ``codedap-depth bag eval``;
``cli``       the ``codedap-depth bag`` command line (``play`` is ``ros/player.py``).
"""
