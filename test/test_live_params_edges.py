"""Edges of the live path's plain data and of the recognizer's parameters: the identity rule's
numbers, log text clipping, and the values start-up must refuse with one line."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosutil import PARAMS_FILE, REPO, make_tiny_model
from test_conversions_edges import _person as person_result
from test_nodes_in_process import recognizer_node
from test_recognition import frame, pose, tiny_recognizer

from prgcn_ros import paths
from prgcn_ros.live_data import (
    AZURE_SOURCE,
    ID_SPAN,
    InferenceResult,
    ParameterError,
    PersonResult,
    RecognizerParams,
    clip_text,
    default_threads,
    local_id,
    parse_parameters,
    source_number,
)
from prgcn_ros.model import backends
from prgcn_ros.nodes.recognizer import StartupError


# ---------------------------------------------------------------------------- identity rule
def test_published_ids_follow_the_documented_identity_rule():
    """person_id = source number x 2**31 + id (docs/recognizer.md): marker ids are int32, so
    the id within a source must fit one, and the number must come back out."""
    assert ID_SPAN == 2**31
    for number, local in ((0, 0), (0, 2**31 - 1), (1, 0), (1, 7), (3, 2**31 - 1), (255, 42)):
        person_id = number * 2**31 + local
        assert (source_number(person_id), local_id(person_id)) == (number, local), person_id


def test_the_largest_int32_driver_id_is_kept_and_the_next_one_is_not():
    rec = tiny_recognizer()
    for t in range(5):
        rec.ingest(frame(t, {2**31 - 1: pose(seed=t)}))
        rec.ingest(frame(t, {2**31: pose(2.0, t)}, frame_id="other_camera"))
    people = {p.frame_id: p.person_id for p in rec.infer().people}
    assert people["kinect"] == 2**31 - 1                    # the driver's own id, unchanged
    assert source_number(people["other_camera"]) == 1      # past int32: the tracker's id
    assert local_id(people["other_camera"]) < 2**31 - 1


def _person(person_id: int, frame_id: str, end_ns: int) -> PersonResult:
    return person_result(person_id, frame_id=frame_id, window_start_ns=0,
                         window_end_ns=end_ns, track=person_id)


def test_a_pass_split_by_frame_counts_each_arrival_once():
    """Each group carries its own people and newest stamp; the pass's arrivals go with one
    group only, so latency summed over the groups counts every frame once."""
    people = [_person(1, "a", 30), _person(2, "b", 50), _person(3, "a", 40)]
    result = InferenceResult.of(people, "kinect20", [1.0, 2.0, 3.0], 0.01)
    assert (result.stamp_ns, result.frame_id) == (50, "b")
    groups = result.by_frame()
    assert [(g.frame_id, g.stamp_ns, [p.person_id for p in g.people]) for g in groups] == [
        ("a", 40, [1, 3]), ("b", 50, [2])]
    assert sorted(a for g in groups for a in g.arrivals) == [1.0, 2.0, 3.0]
    assert result.only({1, 2, 3}) is result and result.only({2}).people == [people[1]]


# ---------------------------------------------------------------------------- log text
def test_log_text_is_clipped_past_its_limit_only():
    assert clip_text("a" * 80) == "a" * 80
    assert clip_text("a" * 81) == "a" * 80 + "... (81 characters)"
    assert clip_text("abcdef", limit=3) == "abc... (6 characters)"


# ---------------------------------------------------------------------------- parameters
def _refused(values: dict) -> str:
    with pytest.raises(ParameterError) as error:
        parse_parameters(values)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_min_frames_may_equal_window_but_not_exceed_it():
    params, _, _ = parse_parameters({"window": 10, "min_frames": 10})
    assert params.min_frames == 10
    assert "min_frames must be between 1 and window (10), got 11" in _refused(
        {"window": 10, "min_frames": 11})


def test_a_long_bad_device_is_quoted_clipped():
    message = _refused({"device": "tpu" * 400})
    assert "device must be auto, cpu, cuda or cuda:N" in message
    assert "(1200 characters)" in message and "tpu" * 100 not in message


@pytest.mark.parametrize("values, words", [
    ({"azure_axis": "z_up"}, "azure_axis must be y_up or y_down, got 'z_up'"),
    ({"model": ""}, "model must name a model file"),
    ({"azure_kinect": 1}, "azure_kinect must be bool, got int 1"),
    ({"skeleton_topic": 5}, "skeleton_topic must be str, got int 5"),
    ({"model": 3}, "model must be str, got int 3"),
    ({"input_depth": "deep"}, "input_depth must be int, got str 'deep'"),
    ({"markers_topic": ""}, "markers_topic must not be empty"),
    ({"azure_kinect": True, "azure_topic": ""}, "azure_topic must not be empty"),
    ({"skeleton_topic": ""}, "no input: skeleton_topic is empty and azure_kinect is false"),
    ({"latency_window_s": 0.0}, "latency_window_s must be between 0.1 and 3600, got 0.0"),
])
def test_bad_values_are_refused_naming_the_parameter(values, words):
    assert words in _refused(values)


def test_an_input_of_the_azure_kinect_alone_is_accepted():
    _, node, _ = parse_parameters({"skeleton_topic": "", "azure_kinect": True})
    assert node.azure_kinect and not node.skeleton_topic


def test_threads_0_leaves_a_core_to_ingestion_and_dds():
    cores = len(os.sched_getaffinity(0))
    assert default_threads() == max(1, cores - 1)
    assert RecognizerParams.from_dict({}).effective_threads() == max(1, cores - 1)


def test_recognizer_params_refuse_what_the_node_refuses():
    with pytest.raises(ParameterError, match="azure_axis must be y_up or y_down"):
        RecognizerParams.from_dict({"azure_axis": "sideways"})


# ---------------------------------------------------------------------------- the node's
@pytest.mark.ros
def test_every_live_parameter_is_applied_and_the_others_kept(tiny_model):
    """Setting one live parameter applies it and leaves the others as started (a check against
    the defaults reset them); smoothing is live like top_k."""
    with recognizer_node(tiny_model, "smoothing:=1", "min_confidence:=0.5", "top_k:=4") as node:
        assert node.set_parameters([Parameter("top_k", value=2)])[0].successful
        assert node.recognizer.params.top_k == 2 and node.recognizer.top_k == 2
        assert node.recognizer.ingestion.params.smoothing == 1
        assert node.recognizer.params.min_confidence == 0.5
        assert node.set_parameters([Parameter("smoothing", value=5)])[0].successful
        assert node.recognizer.ingestion.params.smoothing == 5
        assert node.get_parameter("smoothing").value == 5
        refused = node.set_parameters([Parameter("window", value=12)])[0]
        assert not refused.successful and "window" in refused.reason
        assert node.recognizer.params.window != 12


@pytest.mark.ros
def test_parameters_are_declared_with_their_ranges_and_read_only_flags(tiny_model):
    with recognizer_node(tiny_model) as node:
        window, top_k, confidence, budget = node.describe_parameters(
            ["window", "top_k", "min_confidence", "latency_budget_ms"])
        assert window.read_only and window.description
        assert not top_k.read_only and not confidence.read_only and not budget.read_only
        assert (top_k.integer_range[0].from_value, top_k.integer_range[0].to_value) == (
            1, 10_000)
        assert (window.integer_range[0].from_value, window.integer_range[0].to_value) == (
            1, 100_000)
        assert (confidence.floating_point_range[0].from_value,
                confidence.floating_point_range[0].to_value) == (0.0, 1.0)


@pytest.mark.ros
def test_rclpys_own_parameters_are_neither_unknown_nor_read_only(tiny_model, capfd):
    """use_sim_time and qos_overrides.* belong to rclpy: not warned about as unknown, and
    use_sim_time can still be set live (`ros2 param set ... use_sim_time true`)."""
    with recognizer_node(tiny_model, "use_sim_time:=false", "launch_wide_setting:=1",
                         "qos_overrides./skeletons.subscription.depth:=5") as node:
        assert node.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
        assert node.get_parameter("use_sim_time").value is True
    log = capfd.readouterr().err
    warned = [line for line in log.splitlines() if "ignoring parameters" in line]
    assert len(warned) == 1, log
    assert "launch_wide_setting" in warned[0]
    assert "use_sim_time" not in warned[0].split("(known:")[0]
    assert "qos_overrides" not in warned[0]


@pytest.mark.ros
@pytest.mark.parametrize("param, words", [
    ("window:=64.0", "window must be int, got float 64.0"),
    ("max_rate_hz:=fast", "max_rate_hz must be float, got str 'fast'"),
    ("model:=[a, b]", "model must be str"),
])
def test_a_value_of_another_type_than_the_params_files_is_refused_not_dropped(
        tiny_model, param, words):
    """rcl keeps both values of a parameter given with two types and reads the file's: the
    node started on the file's value without a word (`--params-file config/recognizer.yaml
    -p window:=64.0` ran a window of 96)."""
    with pytest.raises(StartupError, match=re.escape(words)), \
            recognizer_node(tiny_model, param):
        pass


def test_given_parameters_reads_the_last_value_and_the_files_of_other_nodes(tmp_path):
    from prgcn_ros.nodes import given_parameters

    mine = tmp_path / "mine.yaml"
    mine.write_text("/**/prgcn_recognizer:\n  ros__parameters:\n    window: 64\n"
                    "    gravity: {frame: base}\nother_node:\n  ros__parameters:\n"
                    "    window: 8\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text("prgcn_recogniser:\n  ros__parameters:\n    window: 50\n")
    argv = ["prgcn-recognizer", "--ros-args", "-p", "window:=32", "--params-file", str(mine),
            "-r", "__ns:=/robot1", "--params-file", str(typo), "-p", "top_k:=2",
            "-p", "model:=[a]", "--", "-p", "ignored:=1"]
    given, unmatched = given_parameters(argv, "prgcn_recognizer", "/robot1/prgcn_recognizer")
    assert given == {"window": (64, f"--params-file {mine}"),
                     "gravity.frame": ("base", f"--params-file {mine}"),
                     "top_k": (2, "-p top_k:=2"), "model": (["a"], "-p model:=[a]")}
    assert unmatched == [(str(typo), ["prgcn_recogniser"])]


@pytest.mark.ros
def test_a_params_file_without_a_section_for_the_node_is_warned_about(tiny_model, tmp_path,
                                                                      capfd):
    """A misspelt node name: rcl applies none of the file, without a word."""
    import rclpy

    from prgcn_ros.nodes.recognizer import RecognizerNode

    typo = tmp_path / "typo.yaml"
    typo.write_text("prgcn_recogniser:\n  ros__parameters:\n    window: 50\n")
    argv = ["prgcn-recognizer", "--ros-args", "--params-file", str(PARAMS_FILE),
            "--params-file", str(typo), "-p", f"model:={tiny_model}", "-p", "backend:=torch"]
    rclpy.init(args=argv)
    try:
        node = RecognizerNode(argv)
        assert node.params.window != 50
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    warned = [line for line in capfd.readouterr().err.splitlines() if "no section" in line]
    assert len(warned) == 1 and "typo.yaml" in warned[0] and "prgcn_recogniser" in warned[0]


@pytest.mark.ros
def test_a_value_of_the_params_files_type_given_later_wins(tiny_model):
    with recognizer_node(tiny_model, "window:=64", "max_rate_hz:=30", "top_k:=2") as node:
        assert (node.params.window, node.params.max_rate_hz, node.params.top_k) == (64, 30.0, 2)


@pytest.mark.ros
def test_qos_overrides_apply_to_the_inputs_and_outputs(tiny_model):
    """ROS 2's qos_overrides parameters were taken (not warned about) and ignored."""
    from rclpy.qos import HistoryPolicy, ReliabilityPolicy

    with recognizer_node(tiny_model,
                         "qos_overrides./skeletons.subscription.reliability:=reliable",
                         "qos_overrides./skeletons.subscription.depth:=7",
                         "qos_overrides./action.publisher.history:=keep_all") as node:
        [sub] = node._input_subscriptions
        assert sub.qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert sub.qos_profile.depth == 7
        assert node.action_pub.qos_profile.history == HistoryPolicy.KEEP_ALL
        assert node.refined_pub.qos_profile.history == HistoryPolicy.KEEP_LAST
    for bad in ("qos_overrides./skeletons.subscription.reliability:=sometimes",
                "qos_overrides./skeletons.subscription.depth:=abc"):
        with pytest.raises(StartupError, match="invalid qos_overrides parameter"), \
                recognizer_node(tiny_model, bad):
            pass


@pytest.mark.ros
def test_a_number_yaml_reads_as_text_is_a_number_of_the_files_type(tiny_model):
    """rcl reads -p min_confidence:=5e-1 as a double (YAML 1.1 leaves it text): no mismatch."""
    with recognizer_node(tiny_model, "min_confidence:=5e-1") as node:
        assert node.params.min_confidence == 0.5


def test_params_file_sections_match_the_node_as_rcl_matches_them(tmp_path):
    from prgcn_ros.nodes import given_parameters

    for key, full, applies in [("/**/prgcn_recognizer", "/prgcn_recognizer", True),
                               ("/**/prgcn_recognizer", "/a/b/prgcn_recognizer", True),
                               ("robot1/prgcn_recognizer", "/robot1/prgcn_recognizer", True),
                               ("/*/prgcn_recognizer", "/robot1/prgcn_recognizer", True),
                               ("/*/prgcn_recognizer", "/a/b/prgcn_recognizer", False),
                               ("/robot2/prgcn_recognizer", "/robot1/prgcn_recognizer", False),
                               ("/robot1/*", "/robot1/prgcn_recognizer", True)]:
        path = tmp_path / "p.yaml"
        path.write_text(f"{key}:\n  ros__parameters:\n    window: 64\n")
        given, unmatched = given_parameters(["x", "--ros-args", "--params-file", str(path)],
                                            "prgcn_recognizer", full)
        assert (given == {"window": (64, f"--params-file {path}")}) == applies, (key, full)
        assert (unmatched == []) == applies, (key, full)


@pytest.mark.ros
def test_on_humble_a_live_value_of_the_wrong_type_is_refused_not_raised(tiny_model,
                                                                        monkeypatch):
    """Before Iron a live float is typed dynamically, so rclpy lets a string through to the
    node's own check: refused with the reason, the value kept."""
    monkeypatch.delattr(Node, "add_pre_set_parameters_callback")
    with recognizer_node(tiny_model, "min_confidence:=0.25") as node:
        refused = node.set_parameters([Parameter("min_confidence", value="high")])[0]
        assert not refused.successful and "min_confidence must be float" in refused.reason
        assert node.recognizer.params.min_confidence == 0.25


@pytest.mark.ros
def test_a_backend_that_cannot_run_stops_start_up_with_one_line(tiny_model, monkeypatch):
    """backend onnxruntime on a robot without the package: StartupError (one line, exit 2 from
    main), not a traceback."""
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    with pytest.raises(StartupError) as error, \
            recognizer_node(tiny_model, "backend:=onnxruntime"):
        pass
    assert "onnxruntime and onnx packages are not both installed" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.ros
def test_an_input_layout_the_model_cannot_take_stops_start_up(tiny_model):
    with pytest.raises(StartupError) as error, \
            recognizer_node(tiny_model, "input_layout:=coco18"):
        pass
    assert "input_layout 'coco18' cannot be mapped to the layout of model" in str(error.value)
    assert "'kinect20'" in str(error.value)


@pytest.mark.ros
def test_topic_names_rclpy_refuses_stop_start_up_and_valid_ones_do_not(tiny_model):
    """Checked under the node's own name and namespace ('~/x' is private), the Azure topic only
    when that input is on."""
    with pytest.raises(StartupError) as error, \
            recognizer_node(tiny_model, "markers_topic:=rviz//markers", "azure_topic:=1x"):
        pass
    assert "markers_topic 'rviz//markers' is not a valid topic name (topic name must not " \
           "contain repeated '/')" in str(error.value)
    assert "azure_topic" not in str(error.value) and "\n" not in str(error.value)
    with recognizer_node(tiny_model, "action_topic:=~/action", "skeleton_topic:=/{node}/in",
                         "azure_kinect:=true", "azure_topic:=body_tracking_data") as node:
        names = {name for name, _ in node.get_topic_names_and_types()}
        assert {"/prgcn_recognizer/action", "/prgcn_recognizer/in"} <= names, names


@pytest.mark.ros
def test_gravity_settings_for_a_2d_model_stop_start_up(tmp_path):
    model = make_tiny_model(tmp_path / "coco.safetensors", layout="coco18")
    with pytest.raises(StartupError) as error, \
            recognizer_node(model, "input_frame_convention:=z_up"):
        pass
    assert "rotate 3D skeletons" in str(error.value) and "'coco18'" in str(error.value)


@pytest.mark.ros
def test_input_rotated_by_gravity_is_read_as_y_up_whatever_the_axis_settings(tiny_model):
    """Gravity turns 3D input into the model's y-up convention: an azure32 skeleton (y down by
    default) or an axis:=y_down setting must not flip it again."""
    with recognizer_node(tiny_model, "input_frame_convention:=z_up", "axis:=y_down",
                         "azure_kinect:=true", "azure_tilt_deg:=10.0") as node:
        assert node.recognizer.axis_for("skeletons", "azure32") == "y_up"
        assert node.recognizer.axis_for("skeletons", "kinect20") == "y_up"
        assert node.recognizer.axis_for(AZURE_SOURCE, "azure32") == "y_up"


# ---------------------------------------------------------------------------- paths
def _fake_install(prefix: Path, package: str) -> Path:
    """An ament prefix holding ``package`` (its marker in the resource index, its share)."""
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    (index / package).write_text("")
    share = prefix / "share" / package
    (share / "config").mkdir(parents=True, exist_ok=True)
    return share


def test_a_source_checkout_is_its_own_share_directory():
    assert paths.source_root() == REPO
    assert paths.share_dir() == REPO
    assert paths.share_file("config", "recognizer.yaml") == REPO / "config" / "recognizer.yaml"


def test_installed_the_share_directory_is_the_ament_index_ones(tmp_path, monkeypatch):
    """Installed (the module's folder holds no package.xml), share files come from the prefix
    the ament index names."""
    share = _fake_install(tmp_path / "install", "prgcn_ros")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "install"))
    monkeypatch.setattr(paths, "_SOURCE_ROOT", tmp_path / "site-packages")
    assert paths.source_root() is None
    assert paths.share_dir() == share
    assert paths.share_file("config", "recognizer.yaml") == share / "config" / "recognizer.yaml"


def test_a_package_the_ament_index_lacks_is_looked_for_under_this_python(tmp_path, monkeypatch):
    """A pip install registers no ament index: share/<package> under this Python's prefix (the
    venv's, not the base interpreter's)."""
    _fake_install(tmp_path / "install", "some_other_package")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "install"))
    assert paths.installed_share("prgcn_absent") == Path(sys.prefix) / "share" / "prgcn_absent"


def test_the_data_folder_is_prgcn_data_else_beside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # not the checkout's folder: the default stays
    default = (REPO.parent / "shared" / "data").resolve()
    monkeypatch.setenv("PRGCN_DATA", "")
    assert paths.data_dir() == default
    monkeypatch.delenv("PRGCN_DATA")
    assert paths.data_dir() == default
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PRGCN_DATA", "~/skeletons")
    assert paths.data_dir() == tmp_path / "skeletons"


def test_missing_data_names_the_absolute_path_and_the_first_missing_folder(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = paths.missing_data_message(Path("msr") / "deep" / "file.txt")
    assert f"looked for {tmp_path / 'msr' / 'deep' / 'file.txt'} " in message
    assert f"({tmp_path / 'msr'} does not exist)" in message
    (tmp_path / "msr" / "deep").mkdir(parents=True)
    message = paths.missing_data_message(tmp_path / "msr" / "deep" / "file.txt")
    assert "does not exist" not in message and "PRGCN_DATA=" in message
