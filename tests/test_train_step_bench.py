"""bench/bench_train_step.py on a tiny configuration: it runs, checks the samplers, reports every model.
No timing assertions (speed is measured in bench/, never asserted in tests)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import sklearn  # noqa: F401  (test extras; a missing install fails, never skips)
import tensorflow  # noqa: F401

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "bench_train_step.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_train_step", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_step_bench_tiny(tmp_path):
    mod = _load_script()
    lines = []
    out = tmp_path / "train_step.json"
    report = mod.main(["--batch", "4", "--steps", "2", "--warmup", "1", "--json", str(out)], log=lines.append)

    assert report["steps"] == 2 and report["canvas"] == [42, 42, 1]
    assert report["sampler"] == {"mode": "bilinear", "padding": "zeros", "align_corners": False}
    chk = report["check_samplers"]
    assert chk["forward_max_abs_diff"] < mod.FORWARD_TOL
    assert chk["grad_images_max_rel_diff"] < mod.GRAD_RTOL and chk["grad_theta_max_rel_diff"] < mod.GRAD_RTOL
    assert [r["batch"] for r in report["results"]] == [4]
    r = report["results"][0]
    for key in ("median_ms", "min_ms", "times_ms"):
        assert set(r[key]) == set(mod.MODELS)
    assert all(len(v) == 2 for v in r["times_ms"].values())
    assert all(math.isfinite(v) and v > 0 for v in r["median_ms"].values())
    med = r["median_ms"]
    assert r["ratio_tf_over_fastwarp"] == pytest.approx(med["st_tf"] / med["st_fastwarp"])
    assert r["model_check"]["st_output_max_abs_diff_rotated"] < mod.FORWARD_TOL
    for key in ("machine", "threads", "versions", "load_before", "load_after"):
        assert key in report
    assert "tensorflow" in report["versions"] and "keras" in report["versions"]

    table = mod.format_table(report).splitlines()
    assert len(table) == 2 and "TF/fastwarp" in table[0] and table[1].split()[0] == "4"
    assert table[-1] in lines[-1]  # the table is printed last
    assert json.loads(out.read_text())["results"][0]["batch"] == 4


def test_tf_sampler_identity_and_output_size():
    """theta = identity copies the image (align_corners=False); another output size matches fastwarp."""
    import numpy as np
    import tensorflow as tf

    import fastwarp

    mod = _load_script()
    x = np.random.default_rng(0).random((2, 5, 7, 3), dtype=np.float32)
    theta = np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1))
    out = mod.tf_bilinear_sampler()(tf.constant(x), tf.constant(theta)).numpy()
    np.testing.assert_allclose(out, x, atol=1e-6)
    theta[:, 0, 2] = 0.3  # shifted: some samples fall outside (zeros padding)
    resized = mod.tf_bilinear_sampler()(tf.constant(x), tf.constant(theta), (4, 6)).numpy()
    assert resized.shape == (2, 4, 6, 3)
    np.testing.assert_allclose(resized, fastwarp.affine_warp(x, theta, (4, 6)), atol=1e-6)
