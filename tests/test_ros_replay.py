"""``cathtrack-ros-replay`` in its own process, received here: every frame of each kind of source
(synthetic sequence, image folder, video, DICOM) with its pixels, at the rate, stamped when sent."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

try:
    import rclpy
except ImportError as error:  # the [ros] extra is optional
    pytest.skip(f"ROS 2 not installed (import rclpy: {error})", allow_module_level=True)

from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros_support import ros_domain
from sensor_msgs.msg import Image

from cathtrack.data.synth import preset, render_sequence
from cathtrack.io import read_frames
from cathtrack_ros.convert import image_to_array

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")

RATE_HZ = 20.0
# Best effort like the publisher, but deep enough that this process never overwrites a frame.
RECEIVER_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT
)
XA_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"


def _synthetic(tmp_path):
    return "synth:4", [s.image for s in render_sequence(preset("clinical"), 4, 5)]


def _folder(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 4096, (40, 56), dtype=np.uint16) for _ in range(3)]
    for k, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"frame{k + 1}.png"), image)
    cv2.imwrite(str(tmp_path / "frame10.png"), images[0])  # natural order: after frame3
    return str(tmp_path), [*images, images[0]]


def _video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG into .avi"
    for level in (30, 90, 150, 210):
        writer.write(np.full((32, 48, 3), level, np.uint8))
    writer.release()
    return str(path), [frame.image for frame in read_frames(path)]


def _dicom(tmp_path):
    """A 3-frame 12-bit XA file with a pixel spacing of 0.2 mm."""
    frames = (np.arange(3 * 24 * 20, dtype=np.uint16).reshape(3, 24, 20) * 37) % 4096
    path = tmp_path / "run.dcm"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XA_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = XA_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality = "XA"
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.NumberOfFrames = len(frames)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.2, 0.2]
    ds.PixelData = frames.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return str(path), list(frames)


@pytest.mark.parametrize(
    "make_source", [_synthetic, _folder, _video, _dicom], ids=["synth", "folder", "video", "dicom"]
)
def test_replay_sends_every_frame_at_the_rate(tmp_path, make_source):
    source, expected = make_source(tmp_path)
    received: list[tuple[Image, int]] = []
    lock = threading.Lock()

    def keep(msg: Image) -> None:
        now = time.time_ns()
        with lock:
            received.append((msg, now))

    with ros_domain():
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node("replay_test", context=context)
        node.create_subscription(Image, "image", keep, RECEIVER_QOS)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            replay = subprocess.run(
                [sys.executable, "-m", "cathtrack_ros.replay", source, "--rate", str(RATE_HZ),
                 "--frames", "5", "--frame-id", "xray", "--wait", "20"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            # The last frames may still be on their way on a loaded machine: wait for them
            # (bounded), rather than for a fixed time.
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                with lock:
                    if len(received) >= len(expected):
                        break
                time.sleep(0.05)
            time.sleep(0.2)  # and a moment for any extra (unexpected) frame to show up
        finally:
            executor.shutdown()
            spinner.join()
            node.destroy_node()
            rclpy.shutdown(context=context)

    assert replay.returncode == 0, replay.stderr
    assert f"published {len(expected)} frames" in replay.stderr
    assert len(received) == len(expected), replay.stderr
    for (msg, _), image in zip(received, expected, strict=True):
        assert msg.header.frame_id == "xray"
        np.testing.assert_array_equal(image_to_array(msg), image)
    stamps = np.array([m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m, _ in received])
    arrivals = np.array([t for _, t in received])
    intervals_s = np.diff(stamps) / 1e9
    assert np.all(intervals_s > 0)
    assert abs(np.median(intervals_s) - 1 / RATE_HZ) < 0.2 / RATE_HZ, intervals_s
    assert abs((stamps[-1] - stamps[0]) / 1e9 - (len(expected) - 1) / RATE_HZ) < 0.5 / RATE_HZ
    latency_s = (arrivals - stamps) / 1e9
    assert np.all(latency_s > 0) and np.all(latency_s < 0.5), "stamped when sent"
    if make_source is _dicom:
        assert "pixel spacing 0.2 mm" in replay.stderr
