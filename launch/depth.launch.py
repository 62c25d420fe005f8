# SPDX-License-Identifier: Apache-2.0
"""Launch the codedap_depth node with config/params.yaml.

    ros2 launch codedap_depth depth.launch.py namespace:=camera \
        image_topic:=/camera/image_color params_file:=/path/to/params.yaml [lifecycle:=true]

``lifecycle:=true`` starts the managed node (``depth_node --lifecycle``) as a launch_ros
LifecycleNode: it stays unconfigured until a lifecycle manager (or ``ros2 lifecycle set``)
configures and activates it.

Where launch_ros is not installed, ``codedap-depth node --params config/params.yaml`` runs the
same node (add ``--ros-args -r __ns:=/camera -r image_raw:=...`` for namespace and remapping).
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    """Arguments ``params_file``, ``namespace``, ``image_topic``, ``camera_info_topic``,
    ``lifecycle``."""
    default_params = PathJoinSubstitution(
        [FindPackageShare("codedap_depth"), "config", "params.yaml"]
    )
    arguments = [
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="parameter YAML (default: config/params.yaml)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its relative topics"),
        DeclareLaunchArgument("image_topic", default_value="image_raw",
                              description="coded camera images (sensor_msgs/Image)"),
        DeclareLaunchArgument("camera_info_topic", default_value="camera_info",
                              description="CameraInfo of image_topic (optional input)"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="true: the managed (lifecycle) node"),
    ]
    common = {
        "package": "codedap_depth",
        "executable": "depth_node",
        "name": "codedap_depth",
        "namespace": LaunchConfiguration("namespace"),
        "parameters": [LaunchConfiguration("params_file")],
        "remappings": [
            ("image_raw", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        "output": "screen",
        "emulate_tty": True,
    }
    lifecycle = LaunchConfiguration("lifecycle")
    plain = Node(condition=UnlessCondition(lifecycle), **common)
    managed = LifecycleNode(condition=IfCondition(lifecycle), arguments=["--lifecycle"],
                            **common)
    return LaunchDescription([*arguments, plain, managed])
