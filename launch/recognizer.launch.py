"""Start prgcn-recognizer with config/recognizer.yaml (robots with a ROS 2 install).

    ros2 launch prgcn_ros recognizer.launch.py [model:=NAME|PATH] [device:=cpu] \\
        [input_topic:=/skeletons]

Without launch_ros (pip-installed rclpy) the same node and file start with
``prgcn-recognizer --ros-args --params-file config/recognizer.yaml``.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "prgcn_ros"
EXECUTABLE = "prgcn-recognizer"
PARAMS_FILE = "config/recognizer.yaml"


def generate_launch_description() -> LaunchDescription:
    params_file = os.path.join(get_package_share_directory(PACKAGE), PARAMS_FILE)
    arguments = [
        DeclareLaunchArgument(
            "model", default_value="models/prgcn_msr_action3d.safetensors",
            description="a shipped model's name (msr_action3d, nw_ucla, utd_mhad, "
                        "sbu_interaction) or a model file; relative paths resolve in the "
                        "package's share directory"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("input_topic", default_value="/skeletons",
                              description="prgcn_msgs/SkeletonArray input topic"),
    ]
    recognizer = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name="prgcn_recognizer",
        output="screen",
        # The YAML first; the launch arguments override its values.
        parameters=[params_file, {
            "model": LaunchConfiguration("model"),
            "device": LaunchConfiguration("device"),
            "skeleton_topic": LaunchConfiguration("input_topic"),
        }],
    )
    return LaunchDescription([*arguments, recognizer])
