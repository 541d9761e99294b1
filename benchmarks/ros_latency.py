"""Latency through the ROS 2 node, across processes on loopback, and the cost of its messages.

    python benchmarks/ros_latency.py [--model M] [--frames 300] [--rate 10] [--size 256]
                                     [--backend native] [--threads 1] [--before REV] [--rounds 1]
                                     [--json benchmarks/results/ros_latency.json]

Starts `cathtrack-ros` in its own process (random ROS_DOMAIN_ID, localhost discovery, log level
debug so that it logs per-frame timings), publishes synthetic mono16 frames on `image` from this
process at --rate, each stamped with the ROS clock just before `publish`, and records when the
node's result reaches this process's subscription callback: `~/catheters` (CatheterArray), or
`~/catheter_tips` for a node that has no typed message. Latency = arrival - input stamp (one
machine, one clock).

With --before REV the node of git revision REV (its ros/cathtrack_ros, with this tree's
cathtrack) runs too, on the same frames, alternating with this tree's node --rounds times so
that both see the same load; the summary prints both and their ratio.

The figure that counts, "inside the node": from the node's DDS reception of the image to its
result handed to DDS, less the tracker (from the node's debug lines: DDS reception, callback,
[worker thread,] image converted, tracker done, result sent). "Overhead per frame" adds both DDS
hops and this process's executor. The stages split it. The first --warmup frames are left out.
Then `cathtrack.Tracker` alone runs the same frames in this process (same settings and pacing),
and the messages of those results are built and serialised as publishing does, typed
(CatheterArray from numpy arrays) against standard ones (tips and electrodes as PoseArray,
markers with a Python object per point). Last, a check whether rclpy's EventsExecutor runs
callbacks here at all.

Run it on an idle machine: the load average (printed) of other processes shows up as waits.
Where the machine is busy with other jobs, --realtime P runs the node and this process under the
real-time policy SCHED_FIFO at priority P (root, Linux): they then take a CPU ahead of the other
jobs, which stands in for an idle machine. Say which was used next to a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import rclpy
from cathtrack_msgs.msg import CatheterArray
from geometry_msgs.msg import PoseArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

import cathtrack
from cathtrack.data.synth import preset, render_sequence
from cathtrack_ros.convert import array_to_image
from cathtrack_ros.messages import CatheterArrayBuilder, catheter_markers, pose_array
from cathtrack_ros.node import IMAGE_QOS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = Path(__file__).parent / "results" / "ros_latency.json"
NODE_TIMING = re.compile(r"frame (\d+) ns, after its stamp in ms: (.*)")
TYPED, TIPS = "/cathtrack/catheters", "/cathtrack/catheter_tips"


def summary(values_ms) -> dict[str, float]:
    v = np.asarray(values_ms, np.float64)
    return {
        "median": float(np.median(v)),
        "p90": float(np.percentile(v, 90)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }


def row(name: str, values_ms) -> str:
    s = summary(values_ms)
    return f"{name:<36} " + "  ".join(f"{k} {s[k]:7.3f}" for k in ("median", "p90", "p99", "max"))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def realtime(priority: int) -> None:
    """This process, and the threads it starts from now on, under SCHED_FIFO at ``priority``."""
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))


def node_source(revision: str, folder: Path) -> Path:
    """ros/cathtrack_ros of a git revision, extracted under ``folder``; the folder that holds
    the package."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "ros/cathtrack_ros"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "ros"


# Runs cathtrack_ros.node from the folder sys.argv[1] (another revision's copy): its finder
# comes before the editable install's, which would otherwise map cathtrack_ros to this tree.
NODE_FROM_FOLDER = textwrap.dedent(
    """
    import importlib.machinery, runpy, sys
    folder = sys.argv.pop(1)
    class FromFolder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.partition(".")[0] != "cathtrack_ros":
                return None
            return importlib.machinery.PathFinder.find_spec(name, path or [folder])
    sys.meta_path.insert(0, FromFolder)
    runpy.run_module("cathtrack_ros.node", run_name="__main__", alter_sys=True)
    """
)


def run_node(args, frames: list[np.ndarray], log_path: Path, folder: Path | None) -> dict:
    """Publishes the frames to a node process (this tree's, or the one in ``folder``); returns
    stamp -> sent ns, stamp -> (DDS reception ns, callback ns) of the result here, stamp -> the
    node's stage times (ms after the stamp), and the topic measured."""
    source = (folder or ROOT / "ros") / "cathtrack_ros" / "node.py"
    typed = "CatheterArray" in source.read_text()  # an older node: its tips
    topic, msg_type = (TYPED, CatheterArray) if typed else (TIPS, PoseArray)
    launch = (
        ["-m", "cathtrack_ros.node"] if folder is None else ["-c", NODE_FROM_FOLDER, str(folder)]
    )
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            [sys.executable, *launch, "--ros-args",
             "-p", f"model:={args.model}", "-p", f"backend:={args.backend}", "-p", "device:=cpu",
             "-p", f"threads:={args.threads}", "--log-level", "cathtrack:=debug"],
            stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: realtime(args.realtime)) if args.realtime else None,
        )  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context)
    client = rclpy.create_node("cathtrack_latency", context=context)
    publisher = client.create_publisher(Image, "image", IMAGE_QOS)
    arrivals: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    def on_result(msg, info: dict) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with lock:
            arrivals[stamp] = (info["received_timestamp"], now)

    client.create_subscription(msg_type, topic, on_result, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    sent: list[int] = []
    try:
        deadline = time.monotonic() + 120  # the node loads (and may export) its model first
        while publisher.get_subscription_count() == 0 or client.count_publishers(topic) == 0:
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit(f"the node did not come up; its log:\n{log_path.read_text()}")
            time.sleep(0.1)
        time.sleep(1.0)  # let discovery settle both ways
        messages = [array_to_image(frame, Header(frame_id="detector")) for frame in frames]
        period = 1.0 / args.rate
        next_time = time.monotonic()
        for msg in messages:
            stamp = client.get_clock().now()
            msg.header.stamp = stamp.to_msg()
            publisher.publish(msg)
            sent.append(stamp.nanoseconds)
            next_time += period
            time.sleep(max(0.0, next_time - time.monotonic()))
        time.sleep(2.0)
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=30)
        executor.shutdown()
        spinner.join()
        client.destroy_node()
        rclpy.shutdown(context=context)
    stages = {}
    for match in NODE_TIMING.finditer(log_path.read_text()):
        words = match.group(2).split()
        pairs = zip(words[::2], words[1::2], strict=True)
        stages[int(match.group(1))] = {name: float(value) for name, value in pairs}
    with lock:
        return {"sent": sent, "arrivals": dict(arrivals), "stages": stages, "topic": topic}


def analyse(run: dict, warmup: int) -> dict[str, list[float]]:
    """Per-frame figures (ms) of one node run, the first ``warmup`` frames left out."""
    arrivals, stages = run["arrivals"], run["stages"]
    timed = [s for s in run["sent"][warmup:] if s in arrivals and s in stages]
    figures: dict[str, list[float]] = {"received": [len(timed)]}
    for s in timed:
        t = stages[s]
        result = t.get("catheters", t["tips"])  # the first message a controller acts on
        tracker = t["tracked"] - t["converted"]
        before_conversion = t.get("worker", t["callback"])
        values = {
            "inside the node (less the tracker)": result - t["transport"] - tracker,
            "overhead per frame (less the tracker)": (arrivals[s][1] - s) / 1e6 - tracker,
            "stamp -> result in client callback": (arrivals[s][1] - s) / 1e6,
            "stamp -> node DDS reception": t["transport"],
            "  -> node callback": t["callback"] - t["transport"],
            "  -> worker thread": t["worker"] - t["callback"] if "worker" in t else 0.0,
            "  image converted": t["converted"] - before_conversion,
            "  tracker in the node": tracker,
            "  -> result sent": result - t["tracked"],
            "  -> client DDS reception": (arrivals[s][0] - s) / 1e6 - result,
            "  -> client callback": (arrivals[s][1] - arrivals[s][0]) / 1e6,
        }
        for name, value in values.items():
            figures.setdefault(name, []).append(value)
    return figures


def tracker_alone(args, frames: list[np.ndarray]) -> tuple[list[float], list[cathtrack.Result]]:
    """Milliseconds per frame of Tracker alone (node defaults, temporal), paced at --rate."""
    tracker = cathtrack.Tracker(
        args.model or None, backend=args.backend, device="cpu", threads=args.threads, temporal=True
    )
    period = 1.0 / args.rate
    times_ms, results = [], []
    next_time = time.monotonic()
    for frame in frames:
        start = time.perf_counter()
        results.append(tracker(frame))
        times_ms.append(1e3 * (time.perf_counter() - start))
        next_time += period
        time.sleep(max(0.0, next_time - time.monotonic()))
    return times_ms, results


def message_costs(results: list[cathtrack.Result], size: int) -> dict[str, list[float]]:
    """Milliseconds to build and serialise (what ``publish`` does before DDS) the messages of
    each result: typed, and the standard ones."""
    header = Header(frame_id="detector")
    catheter_array = CatheterArrayBuilder()
    costs: dict[str, list[float]] = {"typed": [], "tips": [], "standard": [], "points": []}
    for result in results:
        start = time.perf_counter()
        serialize_message(catheter_array(header, result, (size, size), 0.0))
        typed = time.perf_counter()
        tips = pose_array(
            header,
            [c.tip for c in result.catheters],
            [c.tip_direction for c in result.catheters],
            1,
        )
        serialize_message(tips)
        tipped = time.perf_counter()
        serialize_message(pose_array(header, result.electrodes, None, 1.0))
        serialize_message(catheter_markers(header, result, 1.0))
        done = time.perf_counter()
        costs["typed"].append(1e3 * (typed - start))
        costs["tips"].append(1e3 * (tipped - typed))
        costs["standard"].append(1e3 * (done - typed))
        costs["points"].append(
            sum(len(c.centerline) + len(c.electrodes) for c in result.catheters)
            + len(result.electrodes)
        )
    return costs


EVENTS_EXECUTOR_PROBE = textwrap.dedent(
    """
    import os, rclpy, time
    from rclpy.experimental import EventsExecutor
    rclpy.init()
    node = rclpy.create_node("events_probe")
    fired, start = [], time.monotonic()
    def tick():
        fired.append(1)
        if time.monotonic() - start > 1.0:
            print(f"{len(fired)} calls of a 10 ms timer in 1 s", flush=True)
            os._exit(0)
    node.create_timer(0.01, tick)
    executor = EventsExecutor()
    executor.add_node(node)
    executor.spin()
    """
)


def events_executor_check(seconds: float = 5.0) -> str:
    """Whether rclpy's EventsExecutor runs a timer's callbacks, in a process of its own."""
    probe = subprocess.Popen(
        [sys.executable, "-c", EVENTS_EXECUTOR_PROBE],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # normal scheduling: a probe that busy-waits must not take a CPU from everything else
        preexec_fn=lambda: os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)),
    )
    try:
        output, _ = probe.communicate(timeout=seconds)
        return f"ran: {output.strip().splitlines()[-1] if output.strip() else 'no output'}"
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate()
        return f"no callback in {seconds:g} s (spin() busy-waits); the node cannot use it"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="", help="weights (default: the shipped default model)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second published")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--backend", default="native", choices=("native", "python"))
    parser.add_argument("--threads", type=int, default=1, help="model CPU threads (0: torch's)")
    parser.add_argument("--warmup", type=int, default=10, help="first frames left out")
    parser.add_argument("--before", default="", help="git revision of the node to compare with")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each node, alternating")
    parser.add_argument(
        "--realtime",
        type=int,
        default=0,
        metavar="P",
        help="SCHED_FIFO priority (1-99) for the node and this process; 0: normal scheduling",
    )
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="results file ('' for none)")
    args = parser.parse_args()
    if args.realtime:
        realtime(args.realtime)

    os.environ["ROS_DOMAIN_ID"] = str(random.randint(1, 101))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    frames = [
        np.rint(s.image * 65535).astype(np.uint16)
        for s in render_sequence(preset("clinical", size=args.size), 11, args.frames)
    ]
    print(
        f"{args.frames} frames {args.size}x{args.size} mono16 at {args.rate:g} Hz, backend "
        f"{args.backend}, threads {args.threads}, model {args.model or 'default'}, scheduling "
        f"{f'SCHED_FIFO {args.realtime}' if args.realtime else 'normal'}; {load()}",
        flush=True,
    )
    variants = {"this tree": None}
    loads: dict[str, list[str]] = {}
    figures: dict[str, dict[str, list[float]]] = {}
    topics: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        if args.before:
            variants = {
                f"before ({args.before})": node_source(args.before, Path(folder)),
                **variants,
            }
        for round_ in range(args.rounds):
            for name, source in variants.items():
                loads.setdefault(name, []).append(load())
                run = run_node(args, frames, Path(folder) / "node.log", source)
                topics[name] = run["topic"]
                for key, values in analyse(run, args.warmup).items():
                    figures.setdefault(name, {}).setdefault(key, []).extend(values)
                inside = figures[name]["inside the node (less the tracker)"]
                print(
                    f"round {round_ + 1}, {name}: {len(run['arrivals'])} of {len(frames)} results "
                    f"({run['topic']}); inside the node so far: median "
                    f"{np.median(inside):.3f} ms, p99 {np.percentile(inside, 99):.3f} ms; "
                    f"{loads[name][-1]} at the start",
                    flush=True,
                )
    alone_ms, results = tracker_alone(args, frames)
    costs = message_costs(results[args.warmup :], args.size)
    events = events_executor_check()

    print(f"\nper frame, ms ({args.frames - args.warmup} frames after {args.warmup} of warm-up):")
    for name, values in figures.items():
        print(f"-- {name}: result topic {topics[name]}, {sum(values.pop('received'))} measured")
        for key, series in values.items():
            print(row(key, series))
    print(row("Tracker alone (this process)", alone_ms[args.warmup :]))
    print("\nbuilding and serialising the messages of one result, ms:")
    print(row("typed ~/catheters (CatheterArray)", costs["typed"]))
    print(row("~/catheter_tips (PoseArray)", costs["tips"]))
    print(row("tips + electrodes + markers", costs["standard"]))
    print(
        f"{'points per result':<36} median {np.median(costs['points']):.0f}; standard / typed, "
        f"medians: {np.median(costs['standard']) / np.median(costs['typed']):.1f}x"
    )
    print(f"rclpy EventsExecutor: {events}")
    key = "inside the node (less the tracker)"
    print(f"\n{key}, ms, with the load average at the start of each run:")
    for name, values in figures.items():
        s = summary(values[key])
        print(
            f"  {name:<24} median {s['median']:.3f}  p99 {s['p99']:.3f}  max {s['max']:.3f}  "
            f"({'; '.join(loads[name])})"
        )
    if args.before:
        before, after = (summary(values[key]) for values in figures.values())
        print(
            f"  before / this tree: median {before['median'] / after['median']:.2f}x, "
            f"p99 {before['p99'] / after['p99']:.2f}x"
        )
    print(f"load at the end: {load()}")
    if args.json:
        result = {
            "command": " ".join(["python benchmarks/ros_latency.py", *sys.argv[1:]]),
            "frames": args.frames,
            "warmup": args.warmup,
            "size": args.size,
            "rate_hz": args.rate,
            "model": args.model or "default",
            "backend": args.backend,
            "threads": args.threads,
            "realtime_priority": args.realtime,
            "cpus": os.cpu_count(),
            "load_at_start_of_each_run": loads,
            "load_average_at_end": os.getloadavg(),
            "nodes": {
                name: {"topic": topics[name], **{k: summary(v) for k, v in values.items()}}
                for name, values in figures.items()
            },
            "tracker_alone_ms": summary(alone_ms[args.warmup :]),
            "message_build_and_serialise_ms": {
                k: summary(v) for k, v in costs.items() if k != "points"
            },
            "points_per_result_median": float(np.median(costs["points"])),
            "events_executor": events,
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
