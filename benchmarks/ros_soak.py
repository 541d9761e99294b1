"""Memory of the ROS 2 node over many frames.

    python benchmarks/ros_soak.py [--frames 10000] [--rate 200] [--size 64] [--backend native]
                                  [--threads 1] [--json benchmarks/results/ros_soak.json]

Starts `cathtrack-ros` in its own process (random ROS_DOMAIN_ID, localhost discovery) and
publishes --frames small synthetic mono8 frames at --rate, far faster than the node tracks, so
that most frames are never tracked (replaced in the node's depth-1 subscription history while it
tracks; that path must not leak either); every --malformed-every-th message
is malformed (the four kinds in turn). The node's resident memory (VmRSS of /proc/PID/status) is
sampled every --sample-every frames. Prints RSS at the start (after --warmup frames), at the end
and its maximum, the least-squares slope in MiB per 1000 frames after the warm-up, and the node's
own counts from /diagnostics.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from cathtrack.data.synth import preset, render_sequence
from cathtrack_ros.convert import array_to_image
from cathtrack_ros.node import IMAGE_QOS

DEFAULT_JSON = Path(__file__).parent / "results" / "ros_soak.json"


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def malformed_messages(size: int) -> list[Image]:
    """One message of each kind the node counts as malformed."""
    return [
        Image(encoding="yuv422", width=size, height=size, step=2 * size, data=bytes(2 * size**2)),
        Image(encoding="mono8", width=0, height=size, step=0, data=b""),
        Image(encoding="mono16", width=size, height=size, step=size, data=bytes(2 * size**2)),
        Image(encoding="mono8", width=size, height=size, step=size, data=bytes(size)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="weights (default: the shipped default model)")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--size", type=int, default=64, help="frame width and height")
    parser.add_argument("--backend", default="native", choices=("native", "python"))
    parser.add_argument("--threads", type=int, default=1, help="model CPU threads (0: torch's)")
    parser.add_argument("--malformed-every", type=int, default=50)
    parser.add_argument("--sample-every", type=int, default=250)
    parser.add_argument("--warmup", type=int, default=1000, help="frames before the start value")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="results file ('' for none)")
    args = parser.parse_args()

    os.environ["ROS_DOMAIN_ID"] = str(random.randint(1, 101))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    images = [
        np.rint(s.image * 255).astype(np.uint8)
        for s in render_sequence(preset("clinical", size=args.size), 5, 16)
    ]
    node = subprocess.Popen(
        [sys.executable, "-m", "cathtrack_ros.node", "--ros-args",
         "-p", f"model:={args.model}", "-p", f"backend:={args.backend}", "-p", "device:=cpu",
         "-p", f"threads:={args.threads}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context)
    client = rclpy.create_node("cathtrack_soak", context=context)
    publisher = client.create_publisher(Image, "image", IMAGE_QOS)
    latest: dict[str, str] = {}
    lock = threading.Lock()

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "cathtrack: tracker":
                with lock:
                    latest.update({v.key: v.value for v in status.values})

    client.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    samples: list[tuple[int, float, float]] = []  # (frames sent, seconds, RSS MiB)
    try:
        deadline = time.monotonic() + 120
        while publisher.get_subscription_count() == 0:
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit("the node did not come up")
            time.sleep(0.1)
        time.sleep(1.0)
        messages = [array_to_image(image, Header(frame_id="detector")) for image in images]
        broken = malformed_messages(args.size)
        start = next_time = time.monotonic()
        period = 1.0 / args.rate
        for k in range(args.frames):
            if k % args.sample_every == 0:
                samples.append((k, time.monotonic() - start, rss_mib(node.pid)))
            if args.malformed_every and k % args.malformed_every == args.malformed_every - 1:
                msg = broken[(k // args.malformed_every) % len(broken)]
            else:
                msg = messages[k % len(messages)]
            msg.header.stamp = client.get_clock().now().to_msg()
            publisher.publish(msg)
            next_time += period
            time.sleep(max(0.0, next_time - time.monotonic()))
        time.sleep(2.5)  # the last frame tracked, one more diagnostics period
        samples.append((args.frames, time.monotonic() - start, rss_mib(node.pid)))
        alive = node.poll() is None
    finally:
        node.send_signal(signal.SIGINT)
        exit_status = node.wait(timeout=30)
        executor.shutdown()
        spinner.join()
        client.destroy_node()
        rclpy.shutdown(context=context)

    sent = np.array([s[0] for s in samples], np.float64)
    rss = np.array([s[2] for s in samples])
    after = sent >= args.warmup
    slope = float(np.polyfit(sent[after], rss[after], 1)[0] * 1000) if after.sum() > 1 else 0.0
    with lock:
        counts = dict(latest)
    print(
        f"{args.frames} messages {args.size}x{args.size} at {args.rate:g}/s over "
        f"{samples[-1][1]:.0f} s, backend {args.backend}, threads {args.threads}; node alive: "
        f"{alive}, exit status {exit_status}"
    )
    print(
        f"RSS MiB: first {rss[0]:.1f}, after {args.warmup} frames {rss[after][0]:.1f}, "
        f"end {rss[-1]:.1f}, max {rss.max():.1f}; slope after the warm-up "
        f"{slope:+.3f} MiB per 1000 frames"
    )
    keys = (
        "messages_received", "messages_missed", "messages_malformed", "frames_processed",
        "frames_failed",
    )  # fmt: skip
    print("node counts: " + ", ".join(f"{k} {counts.get(k, '?')}" for k in keys))
    if args.json:
        result = {
            "command": " ".join(["python benchmarks/ros_soak.py", *sys.argv[1:]]),
            "frames": args.frames,
            "rate_hz": args.rate,
            "size": args.size,
            "model": args.model or "default",
            "backend": args.backend,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "node_alive": alive,
            "exit_status": exit_status,
            "rss_mib": {
                "first": float(rss[0]),
                "start": float(rss[after][0]),
                "end": float(rss[-1]),
                "max": float(rss.max()),
                "slope_per_1000_frames": slope,
            },
            "node_counts": {k: int(counts[k]) for k in keys if counts.get(k, "").isdigit()},
            "samples": [
                {"sent": s[0], "seconds": round(s[1], 2), "rss_mib": s[2]} for s in samples
            ],
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
