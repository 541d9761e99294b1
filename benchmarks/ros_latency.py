"""Latency through the ROS 2 node, across processes on loopback.

    python benchmarks/ros_latency.py [--model M] [--frames 150] [--rate 10] [--size 256] [--backend native]
                                     [--threads 1] [--json benchmarks/results/ros_latency.json]

Starts `cathtrack-ros` in its own process (random ROS_DOMAIN_ID, localhost discovery, log level
debug so that it logs per-frame timings), publishes synthetic mono16 frames on `image` from this
process at --rate, each stamped with the ROS clock just before `publish`, and records when
`/cathtrack/catheter_tips` reaches this process's subscription callback: latency = arrival - input
stamp (one machine, one clock). The node stops, then the same frames go through
`cathtrack.Tracker` alone in this process, with the same settings and the same pacing.

Node overhead, two ways: (1) percentiles of the latency minus the same percentiles of Tracker
alone; (2) per frame, the latency minus the time the Tracker took for that frame inside the node
(from the node's debug lines), which does not depend on how fast the Tracker happens to run in
the separate run (on a shared machine that varies by more than the overhead). The stages come from
the timestamps of both processes: the node's debug lines (DDS reception, callback, worker start,
image converted, tracker done, tips published) and this process's DDS reception and callback.
The first --warmup frames are left out.
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
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseArray
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import Header

import cathtrack
from cathtrack.data.synth import preset, render_sequence
from cathtrack_ros.convert import array_to_image
from cathtrack_ros.node import IMAGE_QOS

DEFAULT_JSON = Path(__file__).parent / "results" / "ros_latency.json"
NODE_TIMING = re.compile(
    r"frame (\d+) ns, after its stamp in ms: transport (\S+) callback (\S+) worker (\S+) "
    r"converted (\S+) tracked (\S+) tips (\S+)"
)
NODE_STAGES = ("transport", "callback", "worker", "converted", "tracked", "tips")


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
    return f"{name:<34} " + "  ".join(f"{k} {s[k]:7.2f}" for k in ("median", "p90", "p99", "max"))


def run_node(args, frames: list[np.ndarray], log_path: Path) -> tuple[dict, dict, dict]:
    """Publishes the frames to a node process; returns stamp -> (sent ns), stamp -> (DDS
    reception ns, callback ns) of the tips here, stamp -> node stage times (ms after stamp)."""
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "cathtrack_ros.node", "--ros-args",
             "-p", f"model:={args.model}", "-p", f"backend:={args.backend}", "-p", "device:=cpu",
             "-p", f"threads:={args.threads}", "--log-level", "cathtrack:=debug"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context)
    client = rclpy.create_node("cathtrack_latency", context=context)
    publisher = client.create_publisher(Image, "image", IMAGE_QOS)
    arrivals: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    def on_tips(msg: PoseArray, info: dict) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with lock:
            arrivals[stamp] = (info["received_timestamp"], now)

    client.create_subscription(PoseArray, "/cathtrack/catheter_tips", on_tips, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    sent: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 120  # the node loads (and may export) its model first
        while publisher.get_subscription_count() == 0:
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit(f"the node did not come up; its log: {log_path}")
            time.sleep(0.1)
        time.sleep(1.0)  # let discovery settle both ways
        messages = [array_to_image(frame, Header(frame_id="detector")) for frame in frames]
        period = 1.0 / args.rate
        next_time = time.monotonic()
        for msg in messages:
            stamp = client.get_clock().now()
            msg.header.stamp = stamp.to_msg()
            publisher.publish(msg)
            sent[stamp.nanoseconds] = stamp.nanoseconds
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
        stages[int(match.group(1))] = dict(
            zip(NODE_STAGES, map(float, match.groups()[1:]), strict=True)
        )
    with lock:
        return sent, dict(arrivals), stages


def tracker_alone(args, frames: list[np.ndarray]) -> list[float]:
    """Milliseconds per frame of Tracker alone (node defaults, temporal), paced at --rate."""
    tracker = cathtrack.Tracker(
        args.model or None, backend=args.backend, device="cpu", threads=args.threads, temporal=True
    )
    period = 1.0 / args.rate
    times_ms = []
    next_time = time.monotonic()
    for frame in frames:
        start = time.perf_counter()
        tracker(frame)
        times_ms.append(1e3 * (time.perf_counter() - start))
        next_time += period
        time.sleep(max(0.0, next_time - time.monotonic()))
    return times_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="weights (default: the shipped default model)")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second published")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--backend", default="native", choices=("native", "python"))
    parser.add_argument("--threads", type=int, default=0, help="model CPU threads (0: torch's)")
    parser.add_argument("--warmup", type=int, default=10, help="first frames left out")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="results file ('' for none)")
    args = parser.parse_args()

    os.environ["ROS_DOMAIN_ID"] = str(random.randint(1, 101))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    frames = [
        np.rint(s.image * 65535).astype(np.uint16)
        for s in render_sequence(preset("clinical", size=args.size), 11, args.frames)
    ]
    with tempfile.TemporaryDirectory() as folder:
        sent, arrivals, stages = run_node(args, frames, Path(folder) / "node.log")
    alone_ms = tracker_alone(args, frames)

    stamps = sorted(sent)
    measured = [
        (k, stamp) for k, stamp in enumerate(stamps) if k >= args.warmup and stamp in arrivals
    ]
    if not measured:
        raise SystemExit("no ~/catheter_tips arrived")
    latency = [(arrivals[s][1] - s) / 1e6 for _, s in measured]
    alone = [alone_ms[k] for k, _ in measured]
    timed = [s for _, s in measured if s in stages]
    steps = {
        "stamp -> node DDS reception": [stages[s]["transport"] for s in timed],
        "  -> node callback": [stages[s]["callback"] - stages[s]["transport"] for s in timed],
        "  -> worker picks the frame": [stages[s]["worker"] - stages[s]["callback"] for s in timed],
        "  image converted": [stages[s]["converted"] - stages[s]["worker"] for s in timed],
        "  tracker in the node": [stages[s]["tracked"] - stages[s]["converted"] for s in timed],
        "  -> tips published": [stages[s]["tips"] - stages[s]["tracked"] for s in timed],
        "  -> client DDS reception": [
            (arrivals[s][0] - s) / 1e6 - stages[s]["tips"] for s in timed
        ],
        "  -> client callback": [(arrivals[s][1] - arrivals[s][0]) / 1e6 for s in timed],
    }
    node_overhead = [
        (arrivals[s][1] - s) / 1e6 - (stages[s]["tracked"] - stages[s]["converted"]) for s in timed
    ]
    # The node's own share: from its DDS reception to the tips leaving it, less the tracker (the
    # overhead above also holds both DDS hops and the subscriber's executor).
    inside_node = [
        stages[s]["tips"] - stages[s]["transport"] - (stages[s]["tracked"] - stages[s]["converted"])
        for s in timed
    ]

    print(
        f"{args.frames} frames {args.size}x{args.size} mono16 at {args.rate:g} Hz, backend "
        f"{args.backend}, threads {args.threads}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    received = sum(1 for s in stamps if s in arrivals)
    print(f"tips received for {received} of {len(stamps)} frames; statistics over {len(measured)}")
    print(row("stamp -> ~/catheter_tips", latency))
    print(row("Tracker alone", alone))
    a, b = summary(latency), summary(alone)
    print(
        f"{'overhead, percentile differences':<34} median {a['median'] - b['median']:7.2f}  "
        f"p99 {a['p99'] - b['p99']:7.2f}"
    )
    print(row("overhead, per frame", node_overhead))
    print(row("  of which inside the node", inside_node))
    print("stages (ms):")
    for name, values in steps.items():
        print(row(name, values))
    if args.json:
        result = {
            "command": " ".join(["python benchmarks/ros_latency.py", *sys.argv[1:]]),
            "frames": args.frames,
            "size": args.size,
            "rate_hz": args.rate,
            "model": args.model or "default",
            "backend": args.backend,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "tips_received": received,
            "measured": len(measured),
            "latency_ms": summary(latency),
            "tracker_alone_ms": summary(alone),
            "overhead_percentile_difference_ms": {
                "median": a["median"] - b["median"],
                "p99": a["p99"] - b["p99"],
            },
            "overhead_per_frame_ms": summary(node_overhead),
            "inside_node_ms": summary(inside_node),
            "stages_ms": {name.strip(" ->"): summary(v) for name, v in steps.items()},
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
