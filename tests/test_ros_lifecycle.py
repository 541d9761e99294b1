"""The node's lifecycle, driven from this process through the standard services ~/change_state and
~/get_state, with the node in its own process started with autostart:=false."""

from __future__ import annotations

import time

import pytest

try:
    import rclpy  # noqa: F401
except ImportError as error:  # the [ros] extra is optional
    pytest.skip(f"ROS 2 not installed (import rclpy: {error})", allow_module_level=True)

from ros_support import (
    PYTHON_NODE,
    RESULT_TOPICS,
    TEST_MODEL,
    check_outputs,
    encoded_frames,
    node_and_client,
    stamped,
)
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker

import cathtrack

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")


def _ignored(node, client, msg: Image, at_least: int) -> None:
    """Sends ``msg`` until the node counts ``at_least`` ignored frames; none of them may have
    been tracked or produced an output."""
    inactive = client.wait_status(node, lambda s: client.value("state", s) == "inactive")
    processed = client.count("frames_processed", inactive)
    status = client.wait_count(node, "frames_ignored", at_least, resend=msg)
    assert client.count("frames_processed", status) == processed
    time.sleep(0.3)  # an output, had there been one, would be here by now
    assert not any(client.has(name, msg) for name in RESULT_TOPICS)


def test_lifecycle_through_the_standard_services(tmp_path):
    array, msg = encoded_frames()[1]
    with node_and_client(tmp_path / "node.log", *PYTHON_NODE, "-p", "autostart:=false") as (
        node,
        client,
    ):
        # unconfigured: no model, no subscription, nothing published but diagnostics
        assert client.state() == "unconfigured"
        status = client.wait_status(node, lambda s: client.value("state", s) == "unconfigured")
        assert status.hardware_id == ""
        time.sleep(0.5)
        assert client.publisher.get_subscription_count() == 0

        # a model that does not load: configure fails and the node stays unconfigured
        (accepted,) = client.set_parameters(model=str(tmp_path / "missing.safetensors"))
        assert accepted.successful
        assert not client.change_state("configure")
        assert client.state() == "unconfigured"
        assert "configure failed" in node.log() and "missing.safetensors" in node.log()
        (accepted,) = client.set_parameters(model=str(TEST_MODEL))
        assert accepted.successful

        # inactive: the model is loaded and frames arrive, but they are only counted
        assert client.change_state("configure")
        assert client.state() == "inactive"
        client.wait_subscribed(node)
        _ignored(node, client, stamped(msg), 1)
        (refused,) = client.set_parameters(model="other.pt2")
        assert not refused.successful and "unconfigured" in refused.reason

        # active: frames are tracked (temporal by default: track ids come with the markers)
        assert client.change_state("activate")
        assert client.state() == "active"
        tracker = cathtrack.Tracker(TEST_MODEL, backend="python", device="cpu", temporal=True)
        for _ in range(5):  # the same frame: a resent message gives the same tracks
            outputs = client.result(node, stamped(msg))
            expected = tracker(array)
        check_outputs(outputs, msg, expected)
        lines = [m for m in outputs["markers"].markers if m.type == Marker.LINE_STRIP]
        assert sorted(m.id for m in lines) == sorted(c.track_id for c in expected.catheters)
        assert lines and all(m.id >= 0 for m in lines), "tracks are confirmed after 3 frames"

        # inactive again: outputs stop, frames are counted as ignored
        ignored = client.count("frames_ignored")
        assert client.change_state("deactivate")
        assert client.state() == "inactive"
        _ignored(node, client, stamped(msg), ignored + 1)

        # cleanup releases the model and the subscription; configure loads it again
        assert client.change_state("cleanup")
        assert client.state() == "unconfigured"
        client.wait_subscribed(node, subscribed=False)
        status = client.wait_status(node, lambda s: client.value("state", s) == "unconfigured")
        assert status.hardware_id == ""
        (accepted,) = client.set_parameters(temporal=False)
        assert accepted.successful
        assert client.change_state("configure") and client.change_state("activate")
        client.wait_subscribed(node)
        outputs = client.result(node, stamped(msg))
        check_outputs(
            outputs, msg, cathtrack.Tracker(TEST_MODEL, backend="python", device="cpu")(array)
        )
        assert all(m.id < 0 for m in outputs["markers"].markers[1:]), "no tracks any more"

        # shutdown ends the process
        assert client.change_state("shutdown")
        assert node.process.wait(timeout=20) == 0
        assert "Traceback" not in node.log()


def test_autostart_fails_loudly_on_a_bad_model(tmp_path):
    with node_and_client(
        tmp_path / "node.log", *PYTHON_NODE, "-p", f"model:={tmp_path / 'missing.safetensors'}"
    ) as (node, _):
        assert node.process.wait(timeout=30) == 1
        assert "configure failed" in node.log()
        assert "Traceback" not in node.log()
