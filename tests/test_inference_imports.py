"""Inference stands on its own: building and running a Tracker (both backends), the reference
pipeline, the exporter and the ROS node load no training code and no evaluation library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from runtime_support import tiny_checkpoint, tiny_export

# Modules inference must not load: the training package and what only evaluation needs.
FORBIDDEN = ("cathtrack.train", "cathtrack.metrics", "pycocotools")

LOADED = """
import json, sys
{body}
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(body: str) -> list[str]:
    """The names in sys.modules after running ``body`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED.format(body=body)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def forbidden_in(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_tracker_loads_no_training_or_evaluation_code(tmp_path_factory, backend):
    model = (
        tiny_export(tmp_path_factory, "ts")
        if backend == "native"
        else tiny_checkpoint(tmp_path_factory)
    )
    body = f"""
import numpy as np, cathtrack
tracker = cathtrack.Tracker({str(model)!r}, device="cpu", backend={backend!r}, temporal=True)
result = tracker(np.random.default_rng(0).random((128, 128), dtype=np.float32))
tracker.configure(score_threshold=0.4)
cathtrack.draw(np.zeros((128, 128), np.uint8), result)
json.dumps(result.to_dict())
"""
    modules = loaded_modules(body)
    assert "cathtrack.tracker" in modules and "cathtrack._native" in modules
    assert forbidden_in(modules) == []


def test_the_pipeline_and_the_exporter_load_no_training_or_evaluation_code(tmp_path):
    modules = loaded_modules("import cathtrack.pipeline, cathtrack.export, cathtrack.checkpoint")
    assert "cathtrack.pipeline" in modules and "cathtrack.export" in modules
    assert forbidden_in(modules) == []


def test_the_ros_node_loads_no_training_or_evaluation_code():
    pytest.importorskip("rclpy", reason="the [ros] extra is not installed")
    modules = loaded_modules("import cathtrack_ros.node")
    assert "cathtrack_ros.node" in modules
    assert forbidden_in(modules) == []


def test_the_check_sees_a_forbidden_import():
    """The probe itself works: training code loaded on purpose is reported."""
    found = forbidden_in(loaded_modules("import cathtrack.train.losses"))
    assert {"cathtrack.train", "cathtrack.train.losses"} <= set(found)
