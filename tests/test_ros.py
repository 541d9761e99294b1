"""The ROS 2 node (docs/design.md 4.5): image conversion without a ROS graph, then ``cathtrack_ros.node``
in its own process against the Python Tracker on the same frames: poses, markers, mask and overlay
on demand, units, parameters at run time and a clean shutdown.

The helpers (a node process, the test's client node) are in ros_support.py.
"""

from __future__ import annotations

import numpy as np
import pytest

try:
    import rclpy  # noqa: F401
except ImportError as error:  # the [ros] extra is optional
    pytest.skip(f"ROS 2 not installed (import rclpy: {error})", allow_module_level=True)

from ros_support import (
    MALFORMED,
    PYTHON_NODE,
    TEST_MODEL,
    check_outputs,
    encoded_frames,
    image_message,
    node_and_client,
    stamped,
)
from sensor_msgs.msg import Image
from std_msgs.msg import Header

import cathtrack
from cathtrack_ros.convert import MalformedImage, array_to_image, check_image, image_to_array

# lark (imported by the ROS message packages) still uses the deprecated sre modules.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")


PIXELS = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000 + 7


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_8_bit_drops_row_padding(encoding):
    rows = np.zeros((3, 6), np.uint8)
    rows[:, :4] = PIXELS % 256
    array = image_to_array(image_message(encoding, 4, 3, 6, rows.tobytes()))
    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array, PIXELS % 256)


def test_padding_that_is_not_a_whole_pixel():
    """mono16 rows of 8 bytes with step 9: every row starts at an odd offset."""
    rows = np.zeros((3, 9), np.uint8)
    rows[:, :8] = PIXELS.astype("<u2").view(np.uint8).reshape(3, 8)
    np.testing.assert_array_equal(
        image_to_array(image_message("mono16", 4, 3, 9, rows.tobytes())), PIXELS
    )


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("big", [False, True])
def test_16_bit_in_either_byte_order(encoding, big):
    data = PIXELS.astype(">u2" if big else "<u2").tobytes()
    array = image_to_array(image_message(encoding, 4, 3, 8, data, big))
    assert array.dtype == np.uint16 and array.dtype.byteorder in "=|"
    np.testing.assert_array_equal(array, PIXELS)


def test_32fc1():
    values = PIXELS.astype(np.float32) / 3.0
    array = image_to_array(image_message("32FC1", 4, 3, 16, values.astype("<f4").tobytes()))
    assert array.dtype.byteorder in "=|"  # not "<": the native engine refuses that
    np.testing.assert_array_equal(array, values)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_comes_out_bgr(encoding):
    bgr = np.stack([PIXELS % 256, PIXELS % 7, PIXELS % 5], axis=-1).astype(np.uint8)
    sent = bgr[..., ::-1] if encoding == "rgb8" else bgr
    array = image_to_array(image_message(encoding, 4, 3, 12, np.ascontiguousarray(sent).tobytes()))
    assert array.shape == (3, 4, 3)
    np.testing.assert_array_equal(array, bgr)


@pytest.mark.parametrize("msg, kind, message", MALFORMED)
def test_malformed_messages_raise(msg, kind, message):
    for read in (check_image, image_to_array):
        with pytest.raises(MalformedImage, match=message) as raised:
            read(msg)
        assert raised.value.kind == kind


@pytest.mark.parametrize(
    "array",
    [
        PIXELS.astype(np.uint8),
        PIXELS,
        PIXELS.astype(np.float32) / 7,
        np.stack([PIXELS % 256] * 3, -1).astype(np.uint8),
    ],
)
def test_array_to_image_round_trip(array):
    np.testing.assert_array_equal(image_to_array(array_to_image(array, Header())), array)


def test_array_to_image_refuses_other_arrays():
    with pytest.raises(ValueError, match="no image encoding for a int32"):
        array_to_image(PIXELS.astype(np.int32), Header())


# --- one node (autostart, not temporal) for the tests of this file ------------------------------


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("ros") / "node.log"
    with node_and_client(log_path, *PYTHON_NODE, "-p", "temporal:=false") as (node, client):
        client.wait_subscribed(node)
        yield node, client


@pytest.fixture(scope="module")
def tracker():
    return cathtrack.Tracker(TEST_MODEL, backend="python", device="cpu", temporal=False)


def test_outputs_match_the_tracker(running, tracker):
    node, client = running
    found = 0
    for array, msg in encoded_frames():
        stamped(msg)
        expected = tracker(array)
        check_outputs(client.result(node, msg), msg, expected)
        found += len(expected.catheters)
    assert found > 0, "no catheter in any frame: the comparison tested little"


def test_mask_and_overlay_only_while_subscribed(running, tracker):
    node, client = running
    array, msg = encoded_frames()[0]
    expected = tracker(array)
    client.result(node, stamped(msg))
    status = client.wait_count(node, "frames_processed", 1)
    assert client.count("masks_published", status) == 0
    assert client.count("overlays_published", status) == 0

    client.subscribe("mask", Image)
    client.subscribe("overlay", Image)
    outputs = client.result(node, stamped(msg), ("mask", "overlay"))
    mask, overlay = image_to_array(outputs["mask"]), image_to_array(outputs["overlay"])
    assert outputs["mask"].header == outputs["overlay"].header == msg.header
    assert outputs["mask"].encoding == "mono8" and outputs["overlay"].encoding == "bgr8"
    assert np.abs(mask.astype(int) - expected.mask).max() <= 1
    drawn = cathtrack.draw(array, expected)
    assert overlay.shape == drawn.shape == (*array.shape, 3)
    assert np.mean(np.any(overlay != drawn, axis=-1)) < 1e-3

    # publish_mask false: the mask stops, the overlay goes on
    (outcome,) = client.set_parameters(publish_mask=False)
    assert outcome.successful
    masks = client.count("masks_published", client.wait_count(node, "masks_published", 1))
    processed = client.count("frames_processed")
    client.result(node, stamped(msg), ("overlay",))
    status = client.wait_count(node, "frames_processed", processed + 1)
    assert client.count("masks_published", status) == masks
    assert not client.has("mask", msg)

    # no subscriber left: no overlay either (once the node has seen the subscription go)
    client.unsubscribe("overlay")
    client.unsubscribe("mask")
    for _ in range(5):
        overlays = client.count("overlays_published")
        processed = client.count("frames_processed")
        client.result(node, stamped(msg), ("catheter_tips",))
        status = client.wait_count(node, "frames_processed", processed + 1)
        if client.count("overlays_published", status) == overlays:
            break
    else:
        raise AssertionError("~/overlay still drawn after its subscriber left")
    (outcome,) = client.set_parameters(publish_mask=True)
    assert outcome.successful


def test_pixel_spacing_gives_metres(running, tracker):
    node, client = running
    array, msg = encoded_frames()[1]
    expected = tracker(array)
    assert expected.catheters, "the frame needs a catheter for this test"
    (outcome,) = client.set_parameters(pixel_spacing_mm=0.25)
    assert outcome.successful
    try:
        check_outputs(client.result(node, stamped(msg)), msg, expected, scale=0.25e-3)
    finally:
        (outcome,) = client.set_parameters(pixel_spacing_mm=0.0)
        assert outcome.successful
    check_outputs(client.result(node, stamped(msg)), msg, expected)


def test_parameters_at_run_time(running):
    node, client = running
    array, msg = encoded_frames()[2]
    low = cathtrack.Tracker(TEST_MODEL, backend="python", device="cpu", score_threshold=0.3)(array)
    high = cathtrack.Tracker(TEST_MODEL, backend="python", device="cpu", score_threshold=0.6)(array)
    assert len(high.electrodes) < len(low.electrodes), "the thresholds must make a difference"

    outcomes = client.set_parameters(score_threshold=0.6)
    assert [o.successful for o in outcomes] == [True]
    try:
        check_outputs(client.result(node, stamped(msg)), msg, high)
    finally:
        (outcome,) = client.set_parameters(score_threshold=0.3)
        assert outcome.successful
    check_outputs(client.result(node, stamped(msg)), msg, low)

    (out_of_range,) = client.set_parameters(score_threshold=1.5)
    assert not out_of_range.successful
    for name, value in (("model", "other.pt2"), ("backend", "native"), ("temporal", True)):
        (refused,) = client.set_parameters(**{name: value})
        assert not refused.successful
        assert "only change while the node is unconfigured" in refused.reason, refused.reason
    (refused,) = client.set_parameters(autostart=False)
    assert not refused.successful and "read-only" in refused.reason
    node.check_alive()


def test_interrupt_shuts_down_cleanly(running):
    node, client = running
    array, msg = encoded_frames()[0]
    client.result(node, stamped(msg))
    assert node.interrupt() == 0
    assert "Traceback" not in node.log()
