"""`cathtrack bench` on a few frames: the table, and JSON whose ratios follow from its medians."""

from __future__ import annotations

import json

import pytest

from cathtrack.cli import main


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    report_path = tmp_path_factory.mktemp("bench") / "bench.json"
    printed = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
        arguments = ["--frames", "5", "--warmup", "1", "--size", "128"]
        code = main(["bench", *arguments, "--json", str(report_path)])
    return code, json.loads(report_path.read_text()), "\n".join(printed)


def test_table_and_json_cover_both_formats_and_the_reference(bench):
    code, report, table = bench
    assert code == 0
    assert set(report["backends"]) == {"native pt2", "native ts", "python"}
    python_median = report["backends"]["python"]["end_to_end"]["median_ms"]
    for label in ("native pt2", "native ts"):
        summary = report["backends"][label]
        ratio = python_median / summary["end_to_end"]["median_ms"]
        assert report["speedup_vs_python"][label] == pytest.approx(ratio)
        assert f"speed-up {label} / python (median end to end): {ratio:.2f}x" in table
        assert 0 < summary["pre_post_share"] < 1
        for stage in ("preprocess", "inference", "postprocess", "end_to_end"):
            assert 0 < summary[stage]["median_ms"] <= summary[stage]["p99_ms"]
        # the engine's stages happen inside the timed call
        stages = sum(summary[s]["median_ms"] for s in ("preprocess", "inference", "postprocess"))
        assert stages <= 1.5 * summary["end_to_end"]["median_ms"]
    assert report["frames"] == 5 and report["input_dtype"] == "uint16"
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch_threads"] >= 1
    assert report["machine"]["device_name"]


@pytest.mark.parametrize("arguments", [["missing.safetensors"], ["--size", "0"], ["--frames", "0"]])
def test_bad_arguments_are_one_line_and_exit_2(arguments, tmp_path, capsys):
    assert main(["bench", *arguments, "--json", str(tmp_path / "b.json")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
