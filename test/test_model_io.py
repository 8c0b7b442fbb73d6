"""Model files: safetensors weights + JSON metadata; every failure is one clear ModelFileError."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_model_prgcn import _one_intra_op_thread  # noqa: F401  (autouse fixture)

from prgcn_ros.model import PRGCN, STGCN, ModelFileError, load_model, save_model
from prgcn_ros.model.io import metadata_path

META = {"class_names": [f"a{i:02d}" for i in range(20)], "window": 48, "fps": 15}


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = PRGCN(20, "kinect20")
    model.train()(torch.randn(3, 3, 20, 20, 1))  # non-default BN statistics must survive too
    path = tmp_path / "msr.safetensors"
    save_model(path, model.eval(), META)
    return path, model


def test_round_trip(saved):
    path, model = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["architecture"] == model.arch and meta["class_names"] == META["class_names"]
    loaded, loaded_meta = load_model(path, device="cpu", expected_layout="kinect20",
                                     expected_channels=3)
    assert not loaded.training and loaded_meta["window"] == 48
    x = torch.randn(2, 3, 30, 20, 1)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)


def test_stgcn_round_trip(tmp_path):
    model = STGCN(5, "ntu25").eval()
    save_model(tmp_path / "st.safetensors", model, {})
    loaded, meta = load_model(str(tmp_path / "st.safetensors"))
    assert isinstance(loaded, STGCN) and meta["architecture"]["name"] == "stgcn"


def _error(path, **kwargs) -> str:
    with pytest.raises(ModelFileError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file(tmp_path):
    assert "missing" in _error(tmp_path / "none.safetensors")


@pytest.mark.parametrize("spec", ["~no_such_user_here/m.safetensors",
                                  "/tmp/" + "a" * 300 + ".safetensors"])
def test_a_model_path_the_system_refuses_is_one_line(spec):
    """A home that cannot be told, a name too long: RuntimeError and OSError tracebacks."""
    from prgcn_ros.model.io import resolve_model

    with pytest.raises(ModelFileError) as info:
        resolve_model(spec)
    assert "\n" not in str(info.value) and spec[:20] in str(info.value)
    if spec.startswith("/"):
        assert "too long" in _error(Path(spec))


def test_missing_metadata(saved):
    path, _ = saved
    path.with_suffix(".json").unlink()
    assert "metadata" in _error(path) and "missing" in _error(path)


@pytest.mark.parametrize("cut", [0, 7, 200, -100])
def test_corrupt_or_truncated_weights(saved, cut):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    assert "corrupt or truncated" in _error(path)


def test_garbage_weights(saved):
    path, _ = saved
    path.write_bytes(b"\x00" * 64 + b"not a safetensors file")
    assert "corrupt or truncated" in _error(path)


def test_invalid_metadata(saved):
    path, _ = saved
    path.with_suffix(".json").write_text("{not json")
    assert "not valid JSON" in _error(path)
    # Nested past Python's recursion limit, and an integer of more digits than it converts:
    # a RecursionError traceback, and a line that named no file.
    for text in ("[" * 100_000 + "]" * 100_000, '{"window": ' + "9" * 5001 + "}"):
        path.with_suffix(".json").write_text(text)
        assert "not valid JSON" in _error(path)
    path.with_suffix(".json").write_text("[1, 2]")
    assert "not a JSON object" in _error(path)
    path.with_suffix(".json").write_text(json.dumps({"class_names": []}))
    assert "architecture" in _error(path)


def test_unknown_architecture(saved):
    path, _ = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"]["name"] = "transformer"
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert "unknown architecture 'transformer'" in _error(path)


@pytest.mark.parametrize("change,words", [
    ({"num_classes": 60}, "wrong shape"),
    ({"use_tam": False}, "unexpected"),
    ({"fusion": "sequential"}, "missing"),
])
def test_weights_not_matching_architecture(saved, change, words):
    path, _ = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"].update(change)
    path.with_suffix(".json").write_text(json.dumps(meta))
    message = _error(path)
    assert "do not match the architecture" in message and words in message


@pytest.mark.parametrize("change, words", [
    ({"calibration": {"temperature": -1.0}}, "temperature -1.0 is not a positive number"),
    ({"calibration": {"temperature": 0}}, "temperature 0 is not a positive number"),
    ({"calibration": {"temperature": float("nan")}}, "is not a positive number"),
    ({"calibration": {"temperature": "hot"}}, "'hot' is not a positive number"),
    ({"calibration": {"temperature": 1e300}}, "1e+300 is outside 0.01-100"),
    ({"calibration": {"temperature": 1e-320}}, "is outside 0.01-100"),
    ({"calibration": 3}, "calibration is not an object"),
    ({"max_persons": 3}, "max_persons 3 is not 1 or 2"),
    ({"max_persons": "two"}, "max_persons 'two' is not 1 or 2"),
    ({"format": "something-else/9"}, "format 'something-else/9'"),
    ({"format": "prgcn_ros-model/2"}, "a newer prgcn_ros? upgrade it"),
    ({"window": {"length": 1_000_000_000}}, "window length 1000000000 is outside 1-10000"),
    ({"window": {"length": float("inf")}}, "has no whole number of frames"),
    ({"window": 0}, "window length 0 is outside"),
    ({"architecture": "extra"}, "architecture"),
    # JSON true is no number (Python counts it as 1); a window int() would read as 47, 48, 1, 0.
    ({"calibration": {"temperature": True}}, "temperature True is not a positive number"),
    ({"max_persons": True}, "max_persons True is not 1 or 2"),
    ({"window": 47.9}, "window 47.9 has no whole number of frames"),
    ({"window": "48"}, "window '48' has no whole number of frames"),
    ({"window": True}, "window True has no whole number of frames"),
    ({"window": {"length": 0.5}}, "window {'length': 0.5} has no whole number of frames"),
    ({"window": {"length": "48"}}, "window {'length': '48'} has no whole number of frames"),
    ({"inference": "both"}, "inference is not an object"),       # (a traceback before)
])
def test_metadata_values_every_reader_uses_are_checked(saved, change, words):
    """A negative temperature would invert the ranking, NaN suppress every output, a huge one
    make every answer 'unknown' and a tiny one NaN scores, a third person slot run samples
    training never made: refused, naming the file."""
    path, _ = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    meta.update(change)
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert words in _error(path)


def test_an_architecture_torch_cannot_build_is_one_line(saved):
    path, _ = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"]["num_classes"] = -1
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert "architecture cannot be built" in _error(path)


def _kinect20_spec(**change) -> dict:
    from prgcn_ros.skeleton.layouts import get_layout

    layout = get_layout("kinect20")
    spec = {"name": "kinect20", "joints": list(layout.joints),
            "bones": [list(bone) for bone in layout.bones], "center": layout.center}
    return {**spec, **change}


@pytest.mark.parametrize("change, words", [
    ({"num_classes": "20"}, "num_classes '20' is not an integer"),
    ({"num_classes": 1e400}, "num_classes inf is not an integer"),
    ({"temporal_kernel": 3.0}, "temporal_kernel 3.0 is not an integer"),
    ({"an_option_of_later": True}, "has no option an_option_of_later (a model file from a "
                                   "newer prgcn_ros? upgrade it)"),
    ({"layout": _kinect20_spec(bones=[[0, 99]])}, "bone [0, 99] is not among its 20 joints"),
    ({"layout": _kinect20_spec(center=50)}, "centre 50 is not among its 20 joints"),
    ({"layout": _kinect20_spec(bones=[[0, 1]])}, "differs from the built-in layout of that "
                                                 "name"),
    # Built as true: a network the weights load into, computing something else.
    ({"extent_norm": "false"}, "extent_norm 'false' is not true or false"),
    ({"use_prm": 0}, "use_prm 0 is not true or false"),
    # Its graph would take 37 GiB before anything was said (a MemoryError traceback).
    ({"layout": _kinect20_spec(name="mine", joints=[f"j{k}" for k in range(200_000)],
                               bones=[], center=0)}, "200000 joints, more than 1000"),
])
def test_architecture_values_are_named_in_one_line(saved, change, words):
    """Values a file can hold that failed deep in torch or numpy with a traceback (overflow,
    an index past the joints), or loaded silently against another layout than the node's."""
    path, _ = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"].update(change)
    path.with_suffix(".json").write_text(json.dumps(meta))
    message = _error(path)
    assert words in message and "\n" not in message, message


def test_sizes_a_file_claims_are_checked_before_memory_is_taken_for_them(saved):
    """3,000,000 classes in the metadata of a 20-class model: the network was built (3.3 GB,
    12 s) before its weights said otherwise; a robot's node would meet the OOM killer."""
    import subprocess
    import sys

    path, _ = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"]["num_classes"] = 3_000_000
    path.with_suffix(".json").write_text(json.dumps(meta))
    script = ("import resource, sys\n"
              "from prgcn_ros.model.io import ModelFileError, load_model\n"
              "try:\n    load_model(sys.argv[1])\n"
              "except ModelFileError as error:\n    print(error)\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    assert "2 with the wrong shape" in out[0] and str(path) in out[0]
    assert int(out[1]) < 1_500_000, f"peak {int(out[1]) / 1e6:.2f} GB"      # KiB


def test_the_built_in_layout_written_out_in_full_still_loads(saved):
    path, model = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"]["layout"] = _kinect20_spec()
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert load_model(path, expected_layout="kinect20")[0].layout.name == "kinect20"


def test_integer_weights_are_refused_and_other_float_widths_load(saved):
    """Every float stored as an integer (a converter's mistake) used to load, truncated, and
    answer at chance; float16 and float64 load, cast to the network's float32."""
    from safetensors.torch import load_file, save_file

    path, model = saved
    weights = load_file(str(path))
    for dtype in (torch.float16, torch.float64):
        save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()},
                  str(path), metadata={"format": "prgcn_ros-model/1"})
        assert load_model(path)[0].classifier.weight.dtype == torch.float32
    save_file({k: v.to(torch.int32) if v.is_floating_point() else v
               for k, v in weights.items()}, str(path), metadata={"format": "prgcn_ros-model/1"})
    assert "of the wrong kind of number (e.g. " in _error(path)
    # float8: too few bits for trained weights (a batch-norm variance in it was a traceback).
    for key in ("classifier.weight", next(k for k in weights if k.endswith("running_var"))):
        save_file({**weights, key: weights[key].to(torch.float8_e4m3fn)}, str(path),
                  metadata={"format": "prgcn_ros-model/1"})
        assert f"of the wrong kind of number (e.g. {key} torch.float8_e4m3fn)" in _error(path)


@pytest.mark.parametrize("key, value, words", [
    ("classifier.weight", float("nan"), "holding NaN or infinity"),
    ("classifier.bias", float("inf"), "holding NaN or infinity"),
    (None, -1.0, "batch-norm variances below 0"),
])
def test_weights_a_diverged_training_writes_are_refused(saved, key, value, words):
    from safetensors.torch import load_file, save_file

    path, _ = saved
    weights = load_file(str(path))
    key = key or next(k for k in weights if k.endswith("running_var"))
    weights[key] = weights[key].clone()
    weights[key].view(-1)[0] = value
    save_file(weights, str(path), metadata={"format": "prgcn_ros-model/1"})
    assert words in _error(path)


def test_layout_mismatch(saved):
    path, _ = saved
    message = _error(path, expected_layout="coco18")
    assert message == (f"model {path} is for layout 'kinect20', the node is configured for "
                       f"'coco18'")


def test_channel_mismatch(saved):
    path, _ = saved
    assert "3 input channels" in _error(path, expected_channels=2)


def test_load_never_unpickles(monkeypatch, saved):
    path, model = saved

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", forbidden)
    loaded, _ = load_model(path)
    expected = model.state_dict()
    got = loaded.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_a_pair_torn_by_an_interrupted_write_is_refused(saved, tmp_path, monkeypatch):
    """New weights under the metadata of the write before (a training stopped between the two
    files): refused, naming both, instead of loading with the other run's accuracy and seed.
    Weights another tool rewrote (no token of ours) still load; a failed write leaves the
    previous pair and no temporary file."""
    from safetensors.torch import load_file, save_file

    from prgcn_ros.model import io

    path, model = saved
    before = metadata_path(path).read_text()
    save_model(path, model, {**META, "seed": 2})
    metadata_path(path).write_text(before)
    assert "not the ones its metadata" in _error(path)
    save_file(load_file(str(path)), str(path), metadata={"format": "prgcn_ros-model/1"})
    assert load_model(path)[1]["class_names"] == META["class_names"]

    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("No space left on device (os error 28)")
    monkeypatch.setattr(io, "save_file", full)
    with pytest.raises(OSError, match="No space left"):
        save_model(path, model, META)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, metadata_path(path).name])
    monkeypatch.undo()

    def json_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", json_full)
    with pytest.raises(OSError, match="No space left"):
        save_model(path, model, META)            # the weights written, the metadata not
    monkeypatch.undo()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_set_whose_second_file_fails_leaves_the_old_set_and_no_temporary_file(tmp_path):
    """Every staged file goes, whichever of the set fails (safetensors' own error too)."""
    from safetensors import SafetensorError

    from prgcn_ros.model.io import write_atomic_together

    first, second = tmp_path / "a.safetensors", tmp_path / "a.json"
    for path in (first, second):
        path.write_text("old")

    def fails(path: Path) -> None:
        raise SafetensorError("No space left on device (os error 28)")
    for error in (fails, lambda path: path.write_text(1)):     # (a TypeError: not a str)
        with pytest.raises((OSError, TypeError)):
            write_atomic_together([(first, lambda path: path.write_text("new")),
                                   (second, error)])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.safetensors"]
        assert first.read_text() == second.read_text() == "old"


def test_a_model_file_is_written_in_its_own_folder_then_renamed(tmp_path):
    """The temporary file sits beside the target: a rename across file systems would fail at
    the end of a long training, and the write would no longer be atomic."""
    from prgcn_ros.model.io import write_atomic

    folders = []
    write_atomic(tmp_path / "x.json", lambda tmp: (folders.append(tmp.parent),
                                                   tmp.write_text("{}")))
    assert folders == [tmp_path] and (tmp_path / "x.json").read_text() == "{}"


def test_a_model_file_reaches_the_disk_before_its_rename(tmp_path, monkeypatch):
    """A power cut after a rename whose data were still in the page cache leaves an empty file
    under the model's name (ext4's delayed allocation): the data are synced first, then the
    folder that holds the new name."""
    import os

    from prgcn_ros.model.io import write_atomic

    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "x.json"
    write_atomic(target, lambda tmp: tmp.write_text("{}"))
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    assert events[0][1].endswith(".tmp") and events[2][1] == str(tmp_path)


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_between_the_two_renames_leaves_a_pair_that_loads(saved, monkeypatch, stop):
    """Ctrl-C (or a sweep's SIGTERM, here turned into an exception as prgcn-train does) just
    after the new weights took the name, before their metadata did: the old metadata beside
    the new weights was refused at every load, the previous good model lost too."""
    import os
    import signal

    path, model = saved
    changed = PRGCN(20, "kinect20").eval()
    real_replace = os.replace
    renamed = []

    def replace(src, dst):
        real_replace(src, dst)
        renamed.append(dst)
        if len(renamed) == 1:
            os.kill(os.getpid(), getattr(signal, stop))

    def stopped(*_):
        raise SystemExit(143)

    monkeypatch.setattr(os, "replace", replace)
    # Python's own handlers, whatever an earlier test of the session left installed.
    previous = (signal.signal(signal.SIGTERM, stopped),
                signal.signal(signal.SIGINT, signal.default_int_handler))
    try:
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            save_model(path, changed, META)
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    monkeypatch.undo()
    loaded, _ = load_model(path)
    for key, value in changed.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_weights_named_like_their_metadata_are_refused(saved):
    path, model = saved
    with pytest.raises(ValueError, match="would replace the weights"):
        save_model(path.with_suffix(".json"), model, META)
    load_model(path)                      # the pair that was there is untouched


def test_a_write_whose_data_cannot_reach_the_disk_fails_and_leaves_nothing(tmp_path,
                                                                           monkeypatch):
    """An fsync error (an I/O error, a full disk at write-back) is the write's failure: the
    file is not renamed into place as though it were written."""
    import os

    from prgcn_ros.model.io import write_atomic

    def fails(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fails)
    with pytest.raises(OSError, match="Input/output"):
        write_atomic(tmp_path / "x.json", lambda tmp: tmp.write_text("{}"))
    assert list(tmp_path.iterdir()) == []


def test_load_model_says_a_folder_is_a_folder(tmp_path):
    with pytest.raises(ModelFileError, match="a folder, not a model file"):
        load_model(tmp_path)


def test_the_saved_architecture_is_the_models_own(saved):
    """A caller's stale architecture entry never replaces it: the file would not load."""
    from prgcn_ros.model.io import read_metadata

    path, model = saved
    save_model(path, model, {**META, "architecture": {"name": "stgcn", "num_classes": 3}})
    assert read_metadata(path)["architecture"] == model.arch
    load_model(path)


def test_metadata_that_cannot_be_written_leaves_the_previous_model_whole(saved):
    """Checked before either file is replaced: no new weights beside old metadata."""
    path, model = saved
    before = path.read_bytes(), metadata_path(path).read_bytes()
    with pytest.raises(TypeError):
        save_model(path, model, {**META, "seed": object()})
    assert (path.read_bytes(), metadata_path(path).read_bytes()) == before
    load_model(path)


def test_the_missing_half_of_a_model_is_named(saved):
    path, model = saved
    path.unlink()
    with pytest.raises(ModelFileError) as error:
        load_model(path)
    assert str(error.value).endswith("file is missing") and "corrupt" not in str(error.value)
    save_model(path, model, META)
    metadata_path(path).unlink()
    with pytest.raises(ModelFileError, match=f"metadata file {metadata_path(path)} is missing"):
        load_model(path)


def test_a_model_is_loaded_onto_the_device_asked_for(saved):
    path, _ = saved
    model, _ = load_model(path, device="meta")     # a device every machine has
    assert {p.device.type for p in model.parameters()} == {"meta"}


def _saved_with(tmp_path: Path, edit) -> Path:
    """A small model file whose metadata ``edit`` changed in place."""
    path = tmp_path / "m.safetensors"
    save_model(path, PRGCN(5, "kinect20"), {"class_names": list("abcde")})
    meta = json.loads(metadata_path(path).read_text())
    edit(meta)
    metadata_path(path).write_text(json.dumps(meta))
    return path


def test_metadata_without_a_format_key_loads_as_the_current_format(tmp_path):
    """Model files written before the key existed."""
    load_model(_saved_with(tmp_path, lambda meta: meta.pop("format")))


@pytest.mark.parametrize("edit, words", [
    (lambda meta: meta["architecture"].update(layout={"name": "mine", "bones": [],
                                                       "center": 0}), "cannot be built"),
    (lambda meta: meta.update(architecture=[1, 2]), 'no "architecture" object'),
])
def test_an_architecture_that_cannot_be_built_is_one_line(tmp_path, edit, words):
    """A layout without its joints, an architecture that is no object: the file is named,
    no bare KeyError or TypeError (loading, or fine-tuning from it)."""
    from prgcn_ros.training.finetune import init_from_model

    path = _saved_with(tmp_path, edit)
    assert words in _error(path)
    with pytest.raises(ModelFileError, match="m.safetensors"):
        init_from_model(PRGCN(5, "kinect20"), path)


def test_a_custom_layout_named_like_a_built_in_one_is_refused(tmp_path):
    """A layout with kinect20's name and other bones: saved with its name alone it came back
    with the built-in graph (other logits) without a word."""
    from prgcn_ros.skeleton.layouts import Layout, get_layout

    built_in = get_layout("kinect20")
    bones = (*built_in.bones[:-1], (built_in.bones[-1][0], 0))
    custom = Layout(name="kinect20", joints=built_in.joints, bones=bones, center=built_in.center)
    path = tmp_path / "m.safetensors"
    save_model(path, PRGCN(5, custom), {"class_names": list("abcde")})
    assert "differs from the built-in layout" in _error(path)


def test_more_refined_channels_than_input_channels_are_refused_when_built():
    from prgcn_ros.model.build import build_model

    with pytest.raises(ValueError, match="refine_channels must be in 1..3, not 4"):
        build_model({"name": "prgcn", "num_classes": 5, "layout": "kinect20",
                     "in_channels": 3, "refine_channels": 4})
