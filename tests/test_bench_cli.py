"""``fastwarp bench`` and its runner on tiny workloads: report keys, table, JSON, PNG, skipped
baselines.  No timing assertions (speed is measured in bench/, never asserted in tests)."""

from __future__ import annotations

import json
import sys

import pytest

from fastwarp.cli import build_parser, main
from fastwarp.experiments import benchmark as B
from fastwarp.experiments import report as R

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# PyTorch and TensorFlow are left out here only because importing them takes seconds;
# tests/test_bench_baselines.py runs every baseline.
LIBS = ["fastwarp", "fastwarp_out", "opencv", "numpy"]


def _tiny_config(**kw):
    cfg = B.Config(workloads=[B.Workload("tiny", (2, 12, 17, 3), ("float32", "uint8"))], libraries=LIBS,
                   repeat=3, budget_s=0.0, min_repeat_s=0.0, floor_bytes=8 * 2**20,
                   scaling_batches=(1, 2), scaling_sides=(8, 16), scaling_libraries=("fastwarp", "opencv"),
                   cold_start_uncached=False, breadth_batch=1)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_runner_report_table_json_png(tmp_path):
    lines = []
    report = B.run(_tiny_config(), log=lines.append)
    for key in ("machine", "threads", "versions", "results", "memory_floor", "scaling", "cold_start",
                "transform", "skipped"):
        assert key in report, key
    assert report["machine"]["usable_cores"] >= 1 and report["machine"]["cpu"]
    assert {"fastwarp", "numpy", "numba"} <= set(report["versions"])
    forward = [r for r in report["results"] if r["op"] == "forward"]
    assert {(r["dtype"], r["library"]) for r in forward} == {
        (d, lib) for d in ("float32", "uint8") for lib in LIBS}
    for r in report["results"]:
        assert r["median_ms"] > 0 and len(r["times_ms"]) >= 3
        assert r["ratio"] is not None
        if r["library"] == "fastwarp":
            assert r["ratio"] == 1.0
    assert B.backward_available(), "fastwarp.grad must import"
    assert {r["library"] for r in report["results"] if r["op"] == "backward"} == {"fastwarp"}
    mf = report["memory_floor"]
    assert mf["bytes_moved"] == 2 * 2 * 12 * 17 * 3 * 4 and mf["bandwidth_GBps"] > 0
    assert 0 < mf["fraction_of_floor"] and isinstance(mf["meets_target"], bool)
    sc = report["scaling"]
    assert set(sc["batch"]) == {"fastwarp", "opencv"}
    assert [p[0] for p in sc["batch"]["fastwarp"]] == [1, 2]
    assert [p[0] for p in sc["side"]["opencv"]] == [8, 16]
    assert [p[0] for p in sc["threads"]["fastwarp"]][0] == 1
    (cs,) = report["cold_start"]
    assert cs["numba_cache"] == "warm" and cs["import_ms"] > 0 and cs["first_call_ms"] > 0
    br = report["breadth"]
    assert br["batch"] == [1, 224, 224, 3]
    assert set(br["cells"]) == {"perspective", "bicubic", "uint16", "wrap"}
    for cell, row in br["cells"].items():
        assert row["fastwarp"]["median_ms"] > 0 and row["opencv"]["ratio"] > 0, cell
        assert isinstance(row["opencv"]["meets_target"], bool), cell

    table = R.format_table(report)
    for label in ("fastwarp", "fastwarp out=", "OpenCV", "NumPy", "memory floor",
                  "cold start", "tiny", "uint8", "breadth", "perspective", "bicubic"):
        assert label in table, label
    R.write_json(report, tmp_path / "b.json")
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["results"] == json.loads(json.dumps(report["results"]))
    R.plot(report, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:8] == PNG_MAGIC


def test_targets_marked():
    # a cell whose ratio is under its target is flagged, one over it is not
    assert B.target("forward", "augment", "uint8", "opencv") == 1.5
    assert B.target("forward", "large", "float32", "opencv") == 1.3
    assert B.target("backward", "seed", "float32", "tf_gather") == 15.0
    assert B.target("backward", "seed", "float32", "tf_xla") == 15.0
    assert B.target("forward", "seed", "float32", "tf_gather") is None
    results = [
        {"op": "forward", "workload": "seed", "dtype": "float32", "library": "fastwarp", "median_ms": 2.0},
        {"op": "forward", "workload": "seed", "dtype": "float32", "library": "torch", "median_ms": 3.0},
        {"op": "forward", "workload": "seed", "dtype": "float32", "library": "numpy", "median_ms": 70.0},
        # out= at 1.5 ms: the allocating call (2.0 ms) is 1.33x it, past the 1.2x target
        {"op": "forward", "workload": "seed", "dtype": "float32", "library": "fastwarp_out",
         "median_ms": 1.5},
    ]
    B._add_ratios(results)
    assert [r["meets_target"] for r in results] == [None, False, True, False]
    assert results[1]["ratio"] == 1.5


def test_cpu_family_names_the_micro_architecture():
    zen3 = {"vendor_id": "AuthenticAMD", "cpu family": "25", "model": "1", "flags": "fpu avx2 fma"}
    zen5 = {"vendor_id": "AuthenticAMD", "cpu family": "26", "model": "2", "flags": "avx2 avx512f"}
    intel = {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "143", "flags": "sse4_2"}
    assert B.cpu_family(zen3) == "AMD family 25 model 1 (Zen 3), AVX2"
    assert B.cpu_family(zen5) == "AMD family 26 model 2 (Zen 5), AVX-512"
    assert B.cpu_family(intel) == "Intel family 6 model 143, SSE"
    assert B.cpu_family({}) == ""


def test_time_calls_runs_each_function_in_blocks():
    # every call of a block runs back to back: the log of calls groups by function
    log = []
    fns = {"a": lambda: log.append("a"), "b": lambda: log.append("b")}
    timings = B.time_calls(fns, warmup=1, repeat=4, min_repeat_s=0.0, budget_s=1.0, settle_s=0.0, blocks=2)
    assert all(len(t.times) == 2 * 2 for t in timings.values())
    timed = log[2 * 2:]  # after the warm-up and sizing calls of each function
    runs = [k for i, k in enumerate(timed) if i == 0 or timed[i - 1] != k]
    assert runs == ["a", "b", "a"]  # blocks a, b, then b, a: each round starts at another function
    assert len(timed) == 2 * 2 * (1 + 2)  # per block: one untimed call, then two timed repeats


def test_cli_writes_files_and_skips_missing_baseline(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    out = tmp_path / "res"
    rc = main(["bench", "--shape", "1,9,14,3", "--libraries", "fastwarp,opencv,numpy", "--skip", "scaling",
               "--skip", "cold-start", "--skip", "backward", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "OpenCV: skipped, cv2 not installed (pip install 'fastwarp[cv]')" in text
    assert "Traceback" not in text
    report = json.loads((out / "bench.json").read_text())
    assert "opencv" in report["skipped"]
    assert {r["library"] for r in report["results"]} == {"fastwarp", "numpy"}
    assert (out / "bench.png").read_bytes()[:8] == PNG_MAGIC
    assert "NumPy" in (out / "bench.txt").read_text()


def test_cli_config_selection():
    from fastwarp.commands.bench import make_config

    parse = build_parser().parse_args
    cfg = make_config(parse(["bench", "--quick", "--workload", "augment", "--dtype", "uint8",
                             "--threads", "1"]))
    assert [w.name for w in cfg.workloads] == ["augment"] and cfg.dtypes == ["uint8"] and cfg.threads == 1
    assert B._cases(cfg) == [(B.WORKLOADS["augment"], "uint8")]
    assert cfg.numpy_max_elements and not cfg.cold_start_uncached
    full = make_config(parse(["bench"]))
    assert [w.name for w in full.workloads] == list(B.WORKLOADS) and full.cold_start_uncached
    assert [(w.name, d) for w, d in B._cases(full)] == [
        ("seed", "float32"), ("gtsrb", "float32"), ("augment", "float32"), ("augment", "uint8"),
        ("large", "float32")]
    with pytest.raises(ValueError, match="unknown libraries"):
        make_config(parse(["bench", "--libraries", "fastwarp,caffe"]))
    assert main(["bench", "--libraries", "caffe"]) == 2


def test_call_patterns_measured_and_reported():
    from fastwarp.experiments import patterns as P
    from fastwarp.experiments import report as R

    p = P.measure("gtsrb", "uint8", calls=4)
    for lib in ("fastwarp", "opencv"):
        assert set(p[lib]) == set(P.PATTERNS) and all(v > 0 for v in p[lib].values())
    assert all(v > 0 for v in p["next"].values()) and len(p["next"]) == 6
    assert P.python_work(0.002) > 0
    report = {"machine": {"cpu": "x", "usable_cores": 2}, "threads": {}, "results": [], "patterns": p}
    table = R.format_table(report)
    assert "call patterns (gtsrb uint8" in table
    for pat in P.PATTERNS:
        assert pat in table, pat
