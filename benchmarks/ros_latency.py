"""Latency through the ROS 2 node, across processes on loopback.

    python benchmarks/ros_latency.py [--frames 150] [--rate 10] [--size 256] [--backend native]

Starts `cathtrack-ros` in its own process (random ROS_DOMAIN_ID, localhost discovery), publishes
synthetic mono16 frames on `image` from this process at --rate, stamped with the ROS clock, and
records when `/cathtrack/catheter_tips` arrives: latency = arrival - input stamp (one machine,
one clock). Then the same frames go through `cathtrack.Tracker` alone, in this process, with the
same backend and settings. The node's overhead is the node latency minus the Tracker's time,
compared at the median and at p99. Frames replaced while the node was busy count as drops.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time

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


def percentiles(values_ms: list[float]) -> str:
    v = np.array(values_ms)
    return (
        f"median {np.median(v):7.2f}  p90 {np.percentile(v, 90):7.2f}  "
        f"p99 {np.percentile(v, 99):7.2f}  max {v.max():7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second published")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--backend", default="native", choices=("native", "python"))
    args = parser.parse_args()

    os.environ["ROS_DOMAIN_ID"] = str(random.randint(1, 101))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    frames = [
        np.rint(s.image * 65535).astype(np.uint16)
        for s in render_sequence(preset("clinical", size=args.size), 11, args.frames)
    ]
    node = subprocess.Popen(
        [sys.executable, "-m", "cathtrack_ros.node", "--ros-args",
         "-p", f"backend:={args.backend}", "-p", "device:=cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context)
    client = rclpy.create_node("cathtrack_latency", context=context)
    publisher = client.create_publisher(Image, "image", IMAGE_QOS)
    arrivals: dict[tuple[int, int], float] = {}
    lock = threading.Lock()

    def on_tips(msg: PoseArray) -> None:
        now = client.get_clock().now().nanoseconds
        with lock:
            arrivals[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = now

    client.create_subscription(PoseArray, "/cathtrack/catheter_tips", on_tips, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 120  # the node loads (and may export) its model first
        while publisher.get_subscription_count() == 0:
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit("the node did not come up")
            time.sleep(0.1)
        time.sleep(1.0)  # let discovery settle both ways
        sent: dict[tuple[int, int], int] = {}
        period = 1.0 / args.rate
        next_time = time.monotonic()
        for frame in frames:
            stamp = client.get_clock().now()
            msg = array_to_image(frame, Header(stamp=stamp.to_msg(), frame_id="detector"))
            sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = stamp.nanoseconds
            publisher.publish(msg)
            next_time += period
            time.sleep(max(0.0, next_time - time.monotonic()))
        time.sleep(2.0)
        with lock:
            latency_ms = [(arrivals[k] - sent[k]) / 1e6 for k in sent if k in arrivals]
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=30)
        executor.shutdown()
        spinner.join()
        client.destroy_node()
        rclpy.shutdown(context=context)

    tracker = cathtrack.Tracker(backend=args.backend, device="cpu")
    tracker_ms = []
    for frame in frames:
        start = time.perf_counter()
        tracker(frame)
        tracker_ms.append(1e3 * (time.perf_counter() - start))
    tracker_ms = tracker_ms[5:]  # warm-up
    print(f"{args.frames} frames {args.size}x{args.size} mono16 at {args.rate:g} Hz, "
          f"backend {args.backend}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"received {len(latency_ms)} of {len(sent)} ({len(sent) - len(latency_ms)} dropped)")
    print(f"stamp -> ~/catheter_tips  {percentiles(latency_ms)}")
    print(f"Tracker alone             {percentiles(tracker_ms)}")
    print(
        f"node overhead: median {np.median(latency_ms) - np.median(tracker_ms):.2f} ms, "
        f"p99 {np.percentile(latency_ms, 99) - np.percentile(tracker_ms, 99):.2f} ms"
    )


if __name__ == "__main__":
    main()
