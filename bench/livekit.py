"""Shared machinery of the live benchmarks (bench/live.py, bench/soak.py, bench/flood.py).

One run = three processes on this machine over real DDS, the way a user starts them:
the recognizer (``python -m prgcn_ros.nodes.recognizer --ros-args --params-file
config/recognizer.yaml -p model:=...``), ``bench/peers/skeleton_source.py`` (publishes
SkeletonArray messages on /skeletons following a scenario of phases and logs every message's
stamp and people) and ``bench/peers/action_sink.py`` (logs every /action message's receive time
and each action's window, and every /diagnostics message). This process samples the
recognizer's resident memory and CPU time with psutil, then matches inputs to actions.

Latency of one input (a person in a message) = receive time of the first /action message, in
receive order, that holds an action for that person whose window_end >= the input's stamp,
minus that stamp. Publisher and subscriber read the same system clock (time.time_ns).

Nothing here but :func:`run_scenario` talks to processes; the analysis functions are plain
numpy (test/test_bench_smoke.py checks them on synthetic data).
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / "peers"
RESULTS = BENCH / "results.json"
PARAMS_FILE = REPO / "config" / "recognizer.yaml"
SHIPPED_MODEL = REPO / "models" / "prgcn_msr_action3d.safetensors"
STANDIN_MODEL = Path("/tmp/prgcn_bench/standin_prgcn_msr_action3d.safetensors")
TRAIN_CONFIG = REPO / "config" / "train_msr_action3d.yaml"
DOMAIN_ID = int(os.environ.get("BENCH_ROS_DOMAIN_ID", "77"))
DIAGNOSTICS_PERIOD_S = 0.5
# BENCH_NICE=-10 (root): run the three processes at that priority, shielding them from other
# work on a shared machine, as a robot computer dedicated to the recognizer would. Recorded.
NICE = int(os.environ.get("BENCH_NICE", "0"))
NS = 1_000_000_000


# ---------------------------------------------------------------------------- environment
def bench_env(domain_id: int = DOMAIN_ID) -> dict[str, str]:
    """DDS on loopback and in a domain of the bench's own, so other runs do not meet it."""
    return {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(domain_id),
            "PYTHONUNBUFFERED": "1"}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "nice": NICE}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def today() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- model and data
def model_file() -> tuple[Path, str]:
    """The shipped model when it exists; else a stand-in with random weights and the shipped
    model's architecture, layout, classes and window (from config/train_msr_action3d.yaml):
    the same network, so the same cost per forward."""
    if SHIPPED_MODEL.is_file() and SHIPPED_MODEL.with_suffix(".json").is_file():
        # Which shipped model: the file changes as recipes improve.
        digest = hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest()[:12]
        return SHIPPED_MODEL, f"shipped, {SHIPPED_MODEL.name} sha256 {digest}"
    if not (STANDIN_MODEL.is_file() and STANDIN_MODEL.with_suffix(".json").is_file()):
        make_standin_model(STANDIN_MODEL)
    return STANDIN_MODEL, "stand-in (random weights, shipped architecture)"


def make_standin_model(path: Path) -> Path:
    import torch

    from prgcn_ros.model.io import save_model
    from prgcn_ros.skeleton.labels import MSR_ACTION3D_CLASSES
    from prgcn_ros.training import batching
    from prgcn_ros.training.config import load_config
    from prgcn_ros.training.train import build_model

    cfg = load_config(TRAIN_CONFIG)
    torch.manual_seed(0)
    model = build_model(cfg, len(MSR_ACTION3D_CLASSES))
    save_model(path, model, {
        "class_names": list(MSR_ACTION3D_CLASSES),
        "preprocess": batching.preprocess_config(cfg).to_dict(),
        "window": {"mode": cfg["window"]["mode"], "length": int(cfg["window"]["length"])},
        "fps": float(cfg["fps"]), "note": "bench stand-in: random weights"})
    return path


def msr_recordings(count: int) -> list[Path]:
    """``count`` MSR Action3D recordings (the paper's file list) with every joint of every
    frame present, spread over the actions: a real person each, replayed in a loop."""
    from prgcn_ros.paths import data_dir, missing_data_message
    from prgcn_ros.skeleton.readers import read_msr_action3d

    root = data_dir() / "msr_action3d"
    listing = root / "files_used_in_cvpr12_paper.txt"
    if not root.is_dir():
        raise SystemExit(missing_data_message(root))
    names = (sorted(f"{n}_skeleton3D.txt" for n in listing.read_text().split())
             if listing.is_file() else sorted(p.name for p in root.glob("*_skeleton3D.txt")))
    by_action: dict[str, list[str]] = {}
    for name in names:
        by_action.setdefault(name[:3], []).append(name)
    # Round robin over the actions: a01 s01, a02 s01, ..., a01 next, ...
    order = [group[i] for i in range(max(map(len, by_action.values())))
             for group in by_action.values() if i < len(group)]
    out = []
    for name in order:
        seq = read_msr_action3d(root / name)
        if seq.num_frames >= 20 and (seq.confidence > 0).all():
            out.append(root / name)
            if len(out) == count:
                return out
    raise SystemExit(f"only {len(out)} complete MSR Action3D recordings in {root}")


# ---------------------------------------------------------------------------- results.json
def update_results(updates: Mapping[str, Any], path: Path = RESULTS) -> None:
    """Read-modify-write bench/results.json under a lock: ``updates`` replaces its own
    top-level keys ("meta" is merged field by field); every other key is kept."""
    path.touch(exist_ok=True)
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        text = f.read()
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            raise SystemExit(f"{path} is not valid JSON; not overwriting it") from None
        for key, value in updates.items():
            if key == "meta" and isinstance(data.get("meta"), dict):
                data["meta"] = {**data["meta"], **value}
            else:
                data[key] = value
        f.seek(0)
        f.truncate()
        f.write(json.dumps(data, indent=2) + "\n")


def default_backend() -> str:
    """What the recognizer's ``backend: auto`` runs on this machine's CPU."""
    from prgcn_ros.model.backends import resolve_backend

    return resolve_backend("auto", "cpu")


def meta_update(torch_threads: int | None) -> dict[str, Any]:
    return {"meta": {"date": today(), "machine": machine(),
                     "recognizer_torch_threads": torch_threads, "bench_nice": NICE}}


# ---------------------------------------------------------------------------- analysis
def cover_latencies(in_person: np.ndarray, in_stamp: np.ndarray, act_person: np.ndarray,
                    act_recv: np.ndarray, act_start: np.ndarray, act_end: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per input (person, stamp): (latency in ns, or NaN when no action ever covered it;
    warm-up mask: stamped before that person's first action's window_end).

    The covering action is the first /action, in receive order, for that person whose
    window_end >= stamp; it must also have window_start <= stamp (else the input left the
    window before any action used it and counts as not covered).
    """
    in_person = np.asarray(in_person, np.int64)
    in_stamp = np.asarray(in_stamp, np.int64)
    act_person = np.asarray(act_person, np.int64)
    order = np.argsort(np.asarray(act_recv), kind="stable")
    act_person = act_person[order]
    recv = np.asarray(act_recv, np.int64)[order]
    start = np.asarray(act_start, np.int64)[order]
    end = np.asarray(act_end, np.int64)[order]
    latency = np.full(len(in_stamp), np.nan)
    warm = np.zeros(len(in_stamp), bool)
    for person in np.unique(in_person):
        rows = np.nonzero(act_person == person)[0]
        inputs = np.nonzero(in_person == person)[0]
        if not len(rows):
            continue
        reach = np.maximum.accumulate(end[rows])          # newest stamp covered so far
        k = np.searchsorted(reach, in_stamp[inputs], side="left")
        found = k < len(rows)
        hit, at = inputs[found], rows[k[found]]
        inside = start[at] <= in_stamp[hit]
        latency[hit[inside]] = recv[at[inside]] - in_stamp[hit[inside]]
        warm[inputs] = in_stamp[inputs] < end[rows[0]]
    return latency, warm


def percentile_ms(values_ns: np.ndarray, q: float) -> float | None:
    values = np.asarray(values_ns, float)
    values = values[np.isfinite(values)]
    return round(float(np.percentile(values, q)) / 1e6, 2) if len(values) else None


def median(values: Iterable[float | None]) -> float | None:
    """The median, or None (not measured) when any run measured nothing: a failed repeat is
    not left out of a median of the others without a word."""
    values = list(values)
    if not values or any(v is None for v in values):
        return None
    return round(statistics.median(values), 2)


def kept_by_rate_limit(stamps: np.ndarray, max_hz: float) -> np.ndarray:
    """Which of one input's messages (stamp order) the recognizer's documented flood rule
    keeps: a message closer than 1/max_input_hz to the last kept one is dropped."""
    keep = np.zeros(len(stamps), bool)
    last = None
    gap = NS / max_hz
    for i, stamp in enumerate(stamps):
        if last is None or stamp - last >= gap:
            keep[i] = True
            last = stamp
    return keep


def rss_growth(times_ns: np.ndarray, rss: np.ndarray, pub_ns: np.ndarray,
               pub_people: np.ndarray, warmup_frames: int) -> dict[str, Any]:
    """Resident memory against input progress: samples are placed by the person-frames
    published so far; after ``warmup_frames``, the rest is cut into tenths and the growth is
    the median of the last tenth over the median of the first, in percent."""
    done = np.cumsum(pub_people)
    total = int(done[-1]) if len(done) else 0
    at = np.searchsorted(pub_ns, times_ns, side="right")
    progress = np.where(at > 0, done[np.maximum(at - 1, 0)], 0)
    span = (total - warmup_frames) / 10
    if span <= 0:
        raise ValueError(f"{total} person-frames is not more than the warm-up {warmup_frames}")
    first = rss[(progress >= warmup_frames) & (progress < warmup_frames + span)]
    # Samples taken after the input stopped (the tail, the shutdown) are not the last tenth:
    # only those within one message interval of the last message.
    interval = float(np.median(np.diff(pub_ns))) if len(pub_ns) > 1 else 0.0
    last = rss[(progress > total - span) & (times_ns < pub_ns[-1] + interval)]
    if not len(first) or not len(last):
        raise ValueError("too few memory samples in the first or last tenth")
    a, b = float(np.median(first)), float(np.median(last))
    kept = progress >= warmup_frames
    slope = (np.polyfit(progress[kept] / 1e4, rss[kept] / 2**20, 1)[0]
             if kept.sum() > 2 else None)
    return {"rss_growth_pct": round(100 * (b - a) / a, 2),
            "rss_first_tenth_mb": round(a / 2**20, 1), "rss_last_tenth_mb": round(b / 2**20, 1),
            "rss_peak_mb": round(float(rss.max()) / 2**20, 1),
            "rss_slope_mb_per_10k_frames": None if slope is None else round(float(slope), 3),
            "samples_first_tenth": int(len(first)), "samples_last_tenth": int(len(last))}


# ---------------------------------------------------------------------------- one run
@dataclass
class Run:
    """Everything one scenario left behind."""

    workdir: Path
    phases: list[dict[str, Any]]          # the scenario's phases + what the source measured
    inputs: dict[str, np.ndarray]         # per message: phase, stamp_ns, pub_ns, people ptr/ids
    actions: dict[str, np.ndarray]        # per action: recv_ns, person, start/end ns, msg index
    diagnostics: list[tuple[int, dict[str, float]]]
    samples: dict[str, np.ndarray]        # t_ns, rss bytes, cpu seconds of the recognizer
    alive: bool                           # recognizer still running when the sources stopped
    recognizer_log: str
    torch_threads: int | None = None
    # The network's backend the recognizer ran, from its start-up line ("torch" where `auto`
    # fell back from onnxruntime: the log says why).
    backend: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- slicing
    def phase_index(self, name: str) -> int:
        return next(i for i, p in enumerate(self.phases) if p["name"] == name)

    def messages(self, phase: int) -> np.ndarray:
        return np.nonzero(self.inputs["phase"] == phase)[0]

    def person_frames(self, phase: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(message index, person id, stamp) per person in the phase's messages."""
        ptr, ids = self.inputs["people_ptr"], self.inputs["people"]
        rows = self.messages(phase)
        counts = ptr[rows + 1] - ptr[rows]
        msg = np.repeat(rows, counts)
        person = np.concatenate([ids[ptr[r]:ptr[r + 1]] for r in rows]) if len(rows) else \
            np.zeros(0, np.int64)
        return msg, person, self.inputs["stamp_ns"][msg]

    def diagnostics_at(self, t_ns: int) -> dict[str, float]:
        """The newest /diagnostics received before t_ns (counters are cumulative)."""
        best: dict[str, float] = {}
        for recv, values in self.diagnostics:
            if recv <= t_ns:
                best = values
        return best

    def diagnostics_between(self, a_ns: int, b_ns: int) -> list[dict[str, float]]:
        return [values for recv, values in self.diagnostics if a_ns <= recv <= b_ns]

    def phase_span(self, phase: int) -> tuple[int, int]:
        """(first publish, the next phase's first publish or the end of the run) in ns."""
        rows = self.messages(phase)
        start = int(self.inputs["pub_ns"][rows[0]])
        later = np.nonzero(self.inputs["phase"] > phase)[0]
        end = int(self.inputs["pub_ns"][later[0]]) if len(later) else self.extra["end_ns"]
        return start, end

    # ---------------------------------------------------------------- figures
    def phase_figures(self, name: str, warmup_s: float, *,
                      max_input_hz: float | None = None) -> dict[str, Any]:
        """Latency, drops by reason, rates and recognizer load over one phase."""
        phase = self.phase_index(name)
        rows = self.messages(phase)
        start, end = self.phase_span(phase)
        last_pub = int(self.inputs["pub_ns"][rows[-1]])
        msg, person, stamp = self.person_frames(phase)
        a = self.actions
        latency, warm = cover_latencies(person, stamp, a["person"], a["recv_ns"],
                                        a["start_ns"], a["end_ns"])
        # People sent without an id (-1) get the tracker's ids: not matched here.
        known = person >= 0
        measured = (stamp >= start + warmup_s * NS) & ~warm & known
        covered = np.isfinite(latency) | ~known
        before, after = self.diagnostics_at(start), self.diagnostics_at(end)
        delta = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after
                 if k.startswith("dropped_") or k in ("messages_received", "frames_buffered",
                                                      "inferences", "tracks_started",
                                                      "tracks_expired")}
        reasons = {k[len("dropped_"):]: v for k, v in delta.items()
                   if k.startswith("dropped_") and k != "dropped_total" and v}
        published_msgs, published_frames = len(rows), len(person)
        not_received = published_msgs - delta.get("messages_received", 0)
        not_buffered = published_frames - delta.get("frames_buffered", 0)
        uncovered = int((~covered).sum())
        # Inference rate: /action messages over the measured part of the phase.
        t0 = start + warmup_s * NS
        in_phase = np.unique(a["msg"][(a["recv_ns"] >= t0) & (a["recv_ns"] <= last_pub)])
        inference_hz = len(in_phase) / max((last_pub - t0) / NS, 1e-9)
        # The newest frame an /action used reached the recognizer just before its forward
        # began: its latency is the forward plus transport, the rest of an input's latency is
        # waiting for a forward to start.
        first = np.unique(a["msg"][(a["recv_ns"] >= t0) & (a["recv_ns"] <= last_pub)],
                          return_index=True)[1]
        in_window = np.nonzero((a["recv_ns"] >= t0) & (a["recv_ns"] <= last_pub))[0][first]
        newest = (a["recv_ns"][in_window] - a["stamp_ns"][in_window]).astype(float)
        diag_during = self.diagnostics_between(t0, last_pub)
        cpu = self._cpu_percent(t0, last_pub)
        out: dict[str, Any] = {
            "p50_ms": percentile_ms(latency[measured], 50),
            "p99_ms": percentile_ms(latency[measured], 99),
            "max_ms": percentile_ms(latency[measured], 100),
            "newest_frame_p50_ms": percentile_ms(newest, 50),
            # Upper bound: frames that never reached a ring buffer + frames no action covered.
            "dropped_frames": max(not_buffered, 0) + uncovered,
            "inference_hz": round(inference_hz, 2),
            "published_messages": published_msgs,
            "published_person_frames": published_frames,
            "measured_person_frames": int(measured.sum()),
            "warmup_person_frames": int(warm.sum()),
            "unmatched_id_person_frames": int((~known).sum()),
            "not_received_messages": not_received,
            "not_buffered_person_frames": not_buffered,
            "uncovered_person_frames": uncovered,
            "dropped_by_reason": reasons,
            "input_hz": round(published_msgs / max((last_pub - start) / NS, 1e-9), 2),
            "node_latency_p99_ms": _last(diag_during, "latency_p99_ms"),
            "recognizer_cpu_pct": cpu,
            # Recognizer CPU time (every thread: ingestion, executor, forward) per /action.
            "cpu_ms_per_inference": None if cpu is None or not inference_hz else
            round(10 * cpu / inference_hz, 1),
            "source_late_ticks": self.phases[phase].get("late_ticks"),
        }
        if max_input_hz is not None:
            keep = kept_by_rate_limit(self.inputs["stamp_ns"][rows], max_input_hz)
            kept_msgs = set(rows[keep].tolist())
            is_kept = np.array([m in kept_msgs for m in msg.tolist()], bool)
            out["kept_p50_ms"] = percentile_ms(latency[measured & is_kept], 50)
            out["kept_p99_ms"] = percentile_ms(latency[measured & is_kept], 99)
            out["kept_max_ms"] = percentile_ms(latency[measured & is_kept], 100)
            out["kept_messages_by_rule"] = int(keep.sum())
            out["kept_messages_by_node"] = (delta.get("messages_received", 0)
                                            - delta.get("dropped_total", 0))
        return out

    def rss_at(self, t_ns: int) -> float:
        """The recognizer's RSS (bytes) in the newest sample before t_ns."""
        i = np.searchsorted(self.samples["t_ns"], t_ns, side="right")
        return float(self.samples["rss"][max(i - 1, 0)])

    def _cpu_percent(self, a_ns: int, b_ns: int) -> float | None:
        t, cpu = self.samples["t_ns"], self.samples["cpu_s"]
        inside = np.nonzero((t >= a_ns) & (t <= b_ns))[0]
        if len(inside) < 2:
            return None
        i, j = inside[0], inside[-1]
        return round(100 * (cpu[j] - cpu[i]) / ((t[j] - t[i]) / NS), 1)


def _last(diags: Sequence[Mapping[str, float]], key: str) -> float | None:
    values = [d[key] for d in diags if key in d]
    return values[-1] if values else None


def profile_summary(path: Path, top: int = 25) -> dict[str, Any]:
    """py-spy's collapsed stacks (idle samples excluded) as: per thread, its share of the
    busy samples and the functions that share is spent in (inclusive), largest first."""
    threads: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        name = re.sub(r"\(\d+\)", "", frames[0]).strip()
        n = int(count)
        totals[name] = totals.get(name, 0) + n
        funcs = threads.setdefault(name, {})
        for frame in set(frames[1:]):
            funcs[frame] = funcs.get(frame, 0) + n
    busy = sum(totals.values()) or 1
    return {name: {"busy_share_pct": round(100 * totals[name] / busy, 1),
                   "functions_pct": {f: round(100 * c / totals[name], 1) for f, c in
                                     sorted(funcs.items(), key=lambda x: -x[1])[:top]}}
            for name, funcs in sorted(threads.items(), key=lambda x: -totals[x[0]])}


class _Sampler(threading.Thread):
    """Resident memory and CPU time of one process, every ``period_s``."""

    def __init__(self, pid: int, period_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.period_s = period_s
        self.rows: list[tuple[int, int, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._done.is_set():
            try:
                rss = self.proc.memory_info().rss
                times = self.proc.cpu_times()
            except psutil.Error:
                return
            self.rows.append((time.time_ns(), rss, times.user + times.system))
            self._done.wait(self.period_s)

    def stop(self) -> dict[str, np.ndarray]:
        self._done.set()
        self.join()
        arr = np.array(self.rows, float).reshape(-1, 3)
        return {"t_ns": arr[:, 0].astype(np.int64), "rss": arr[:, 1], "cpu_s": arr[:, 2]}


def _rosutil():
    sys.path.insert(0, str(REPO / "test"))
    import rosutil

    return rosutil


def _wait_for_line(proc, text: str, timeout_s: float, others=()) -> None:
    rosutil = _rosutil()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in rosutil.process_log(proc):
            return
        for p in (proc, *others):
            if p.poll() is not None:
                raise RuntimeError(f"{Path(p.args[1]).name} exited ({p.returncode}):\n"
                                   + rosutil.process_log(p)[-3000:])
        time.sleep(0.1)
    raise RuntimeError(f"no {text!r} from {proc.args[1:3]} within {timeout_s} s:\n"
                       + rosutil.process_log(proc)[-3000:])


def recognizer_args(model: Path, params: Mapping[str, Any]) -> list[str]:
    args = ["-m", "prgcn_ros.nodes.recognizer", "--ros-args", "--params-file",
            str(PARAMS_FILE), "-p", f"model:={model}",
            "-p", f"diagnostics_period_s:={DIAGNOSTICS_PERIOD_S}"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args


def run_scenario(name: str, scenario: dict[str, Any], model: Path,
                 params: Mapping[str, Any] | None = None, tail_s: float = 2.5,
                 workdir: Path | None = None, profile: bool = False) -> Run:
    """Start recognizer, sink and source; play the scenario; collect everything.

    ``profile``: sample the recognizer with py-spy (every thread, Python frames, without
    pausing it) while the source plays; collapsed stacks go to WORKDIR/profile.txt (see
    :func:`profile_summary`).
    """
    rosutil = _rosutil()
    workdir = workdir or Path("/tmp/prgcn_bench") / name
    workdir.mkdir(parents=True, exist_ok=True)
    env = bench_env()
    (workdir / "scenario.json").write_text(json.dumps(scenario, indent=2))
    expected = sum(p.get("duration_s", 0) + p.get("gap_after_s", 0) for p in scenario["phases"])
    expected += sum(p.get("person_frames", 0) / 300 for p in scenario["phases"])
    procs = []
    if NICE:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)   # inherited by the processes started below
    try:
        rec = rosutil.start_process(recognizer_args(model, params or {}),
                                    workdir / "recognizer.log", env)
        procs.append(rec)
        sampler = _Sampler(rec.pid)
        sampler.start()
        sink = rosutil.start_process([str(PEERS / "action_sink.py"), str(workdir / "actions")],
                                     workdir / "sink.log", env)
        procs.append(sink)
        _wait_for_line(sink, "sink ready", 120, others=(rec,))
        source = rosutil.start_process([str(PEERS / "skeleton_source.py"),
                                        str(workdir / "scenario.json"),
                                        str(workdir / "inputs.npz")], workdir / "source.log", env)
        procs.append(source)
        if profile:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(rec.pid),
                 "--rate", "100", "--threads", "--nonblocking", "--format", "raw",
                 "--output", str(workdir / "profile.txt")],
                stdout=subprocess.DEVNULL, stderr=open(workdir / "py-spy.log", "w"))  # noqa: SIM115
        try:
            source.wait(timeout=60 + 3 * expected)
        except Exception:
            raise RuntimeError(f"{name}: the skeleton source did not finish:\n"
                               + rosutil.process_log(source)[-3000:]) from None
        if source.returncode != 0:
            raise RuntimeError(f"{name}: the skeleton source failed:\n"
                               + rosutil.process_log(source)[-3000:])
        if profile:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        time.sleep(tail_s)
        end_ns = time.time_ns()
        alive = rec.poll() is None
        samples = sampler.stop()
        rosutil.stop_process(sink, 20)
        if sink.returncode != 0:
            raise RuntimeError(f"{name}: the action sink failed:\n"
                               + rosutil.process_log(sink)[-3000:])
        log = rosutil.process_log(rec)
    finally:
        for proc in reversed(procs):
            rosutil.stop_process(proc)
    inputs = dict(np.load(workdir / "inputs.npz"))
    actions = dict(np.load(workdir / "actions.npz"))
    diags = [(int(d["recv_ns"]), d["values"]) for d in
             json.loads((workdir / "actions.diagnostics.json").read_text())]
    phases = json.loads((workdir / "inputs.phases.json").read_text())
    match = re.search(r"(\d+) (?:torch )?thread", log)
    return Run(workdir=workdir, phases=phases, inputs=inputs, actions=actions,
               diagnostics=diags, samples=samples, alive=alive, recognizer_log=log,
               torch_threads=int(match.group(1)) if match else None,
               backend=started_backend(log), extra={"end_ns": end_ns})


def started_backend(log: str) -> str | None:
    """The backend of the recognizer's start-up line (None: no such line)."""
    found = re.search(r", backend (\w+)", log)
    return found.group(1) if found else None
