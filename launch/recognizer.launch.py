"""Start prgcn-recognizer with config/recognizer.yaml (robots with a ROS 2 install).

    ros2 launch prgcn_ros recognizer.launch.py [namespace:=robot1] [params_file:=my.yaml]
        [use_sim_time:=true] [log_level:=debug] [model:=NAME|PATH] [device:=cuda]
        [input_topic:=/camera/skeletons] [azure_topic:=/body_tracking_data] [rviz:=true]
        [fixed_frame:=camera_link]

Single-person actions and two-person interactions side by side: two recognizers, each in its
own namespace, on one input (absolute input_topic, or the namespace would move it too):

    ros2 launch prgcn_ros recognizer.launch.py namespace:=actions model:=msr_action3d \
        input_topic:=/skeletons
    ros2 launch prgcn_ros recognizer.launch.py namespace:=interactions \
        model:=sbu_interaction input_topic:=/skeletons [params_file:=my_interactions.yaml]

Labels come on /actions/action and /interactions/action. The interaction model (max_persons
2) pairs people of one frame_id within the parameter pair_gate (metres; 0: 2 m) and labels both
of a pair, each Action carrying the other's person_id in partner_id (-1: alone; always -1 with
a one-person model). Below the parameter min_confidence (calibrated, per model; 0: off) the
label is "unknown" with the top-k still listed. Both parameters come from params_file (a copy
of config/recognizer.yaml per recognizer where they differ); min_confidence is live
(ros2 param set /interactions/prgcn_recognizer min_confidence 0.5).

Every file is found by substitution (FindPackageShare), so the same file runs from a colcon
install and from the project's venv (`make setup` registers the package in its ament index).
Without launch_ros (pip-installed rclpy) the same node and YAML start with
``prgcn-recognizer --ros-args --params-file config/recognizer.yaml``.
"""
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchContext, LaunchDescription

PACKAGE = "prgcn_ros"
EXECUTABLE = "prgcn-recognizer"
NODE_NAME = "prgcn_recognizer"
PARAMS_FILE = "config/recognizer.yaml"
RVIZ_FILE = "rviz/prgcn.rviz"
# The node's input topics (relative: they follow the namespace); input_topic and azure_topic
# remap them.
INPUT_TOPIC = "skeletons"
AZURE_TOPIC = "body_tracking_data"
# Launch arguments that set the node parameter of their name when given (not empty); left
# empty, the params_file's value stands.
OVERRIDES = ("model", "device")

# name -> (default, description); the defaults that name files are substitutions below.
ARGUMENTS = {
    "namespace": ("", "namespace of the recognizer (and RViz); topics follow it. Two "
                  "recognizers (e.g. actions with msr_action3d, interactions with "
                  "sbu_interaction) run side by side in two namespaces"),
    "params_file": (None, "YAML parameter file (default: the installed config/recognizer.yaml); "
                    "a copy per recognizer for its own min_confidence ('unknown' below this "
                    "calibrated confidence; 0: off) and pair_gate (two-person models: metres "
                    "within which two people are one sample; 0: 2 m)"),
    "use_sim_time": ("false", "use /clock (rosbag2 playback with --clock)"),
    "log_level": ("info", "debug, info, warn, error or fatal"),
    "model": ("",
              "a shipped model's name (msr_action3d, nw_ucla, utd_mhad, sbu_interaction) or a "
              "model file (relative: the working directory, else the package's share directory); "
              "wins over model in params_file (empty: params_file's, in the shipped file "
              "msr_action3d). "
              "sbu_interaction is a two-person model: /action labels both people of a pair, "
              "each with the other's id in partner_id (-1: alone)"),
    "device": ("", "auto (cuda when present), cpu, cuda or cuda:N; wins over device in "
               "params_file (empty: params_file's, in the shipped file auto)"),
    "input_topic": ("skeletons", "prgcn_msgs/SkeletonArray input topic (remaps skeletons, the "
                    "default skeleton_topic); "
                    "absolute (/skeletons) for recognizers in several namespaces on one input"),
    "azure_topic": ("body_tracking_data", "Azure Kinect body tracking MarkerArray input, read "
                    "when params_file sets azure_kinect: true (remaps body_tracking_data, the "
                    "default azure_topic); absolute (/body_tracking_data) under a namespace, "
                    "where the driver publishes"),
    "rviz": ("false", "true: start RViz with rviz/prgcn.rviz"),
    "fixed_frame": ("camera", "RViz fixed frame: the frame_id of the skeletons"),
}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    defaults = {"params_file": PathJoinSubstitution([share, PARAMS_FILE])}
    arguments = [DeclareLaunchArgument(name, default_value=defaults.get(name, default),
                                       description=description)
                 for name, (default, description) in ARGUMENTS.items()]

    def arg(name: str) -> LaunchConfiguration:
        return LaunchConfiguration(name)

    def recognizer(context: LaunchContext) -> list[Node]:
        # Strings as given: launch_ros reads a plain value as YAML (a model named 1e3 would be
        # a number, device "on" a boolean).
        given = {name: ParameterValue(value, value_type=str)
                 for name in OVERRIDES if (value := arg(name).perform(context))}
        return [Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=arg("namespace"),
            output="screen",
            # The YAML first; the launch arguments given override its values.
            parameters=[arg("params_file"), {
                **given,
                "use_sim_time": ParameterValue(arg("use_sim_time"), value_type=bool),
            }],
            remappings=[(INPUT_TOPIC, arg("input_topic")), (AZURE_TOPIC, arg("azure_topic"))],
            arguments=["--ros-args", "--log-level", arg("log_level")],
        )]

    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="prgcn_rviz",
        namespace=arg("namespace"),
        arguments=["-d", PathJoinSubstitution([share, RVIZ_FILE]),
                   "--fixed-frame", arg("fixed_frame")],
        parameters=[{"use_sim_time": ParameterValue(arg("use_sim_time"), value_type=bool)}],
        condition=IfCondition(arg("rviz")),
        output="screen",
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=recognizer), rviz])
