"""One full training step of the ST-CNN: fastwarp's sampler against a pure-TF sampler.

Times forward + backward + Adam update of the three models of
``fastwarp/experiments/stn.py`` on the distorted digits (42x42x1 canvas):

* ``cnn``: the plain CNN (reference);
* ``st_fastwarp``: the ST-CNN as shipped, its :class:`fastwarp.tf.SpatialTransformer`
  warping with fastwarp (``tf.numpy_function`` + custom gradient);
* ``st_tf``: the same model, same weights, whose transformer samples with
  :func:`tf_bilinear_sampler` instead, written in TF ops (affine grid,
  ``tf.gather_nd`` bilinear, zeros padding, ``align_corners=False``) so TF's
  autodiff gives the gradients for the images and theta.

Each model trains with its own ``keras.optimizers.Adam(1e-3)`` in a
``tf.function`` train step (no XLA: fastwarp's op cannot be compiled by it,
so neither is the TF one), on the same batch.  Before timing, the script
checks (and asserts) that both samplers compute the same output and gradients
for non-trivial theta, and that both ST-CNNs give the same logits.  After
``--warmup`` untimed steps (tracing), the models take turns, one step each,
``--steps`` times; the table gives the median ms per step.

    python bench/bench_train_step.py                    # batches 64 and 256, 30 steps
    python bench/bench_train_step.py --batch 64 --steps 50 --json train_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

CANVAS = 42  # stn.make_distorted_digits' default canvas side
MODELS = ("cnn", "st_fastwarp", "st_tf")
LABELS = {"cnn": "CNN", "st_fastwarp": "ST-CNN fastwarp", "st_tf": "ST-CNN TF gather"}
FORWARD_TOL = 1e-5  # max abs difference of the two samplers' outputs (images in [0, 1], float32)
GRAD_RTOL = 1e-3  # max abs difference of the gradients, relative to their largest magnitude


def tf_bilinear_sampler():
    """``sample(images, theta, size)``: pure-TF differentiable affine warp, fastwarp's convention.

    Bilinear, zeros padding, ``align_corners=False`` (the flags
    ``SpatialTransformer`` uses in ``fastwarp.experiments.stn``): the normalized output
    mesh is mapped by theta to input pixels ``((x + 1) W - 1) / 2``; each of
    the four neighbours outside the image contributes zero, the others are
    gathered with ``tf.gather_nd`` (indices clipped, weights masked).  This is
    ``fastwarp.experiments.baselines.tf_gather_sampler`` (border padding) with
    zeros padding and an output size.
    """
    import tensorflow as tf

    def sample(images, theta, size=None):
        shape = tf.shape(images)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        ho, wo = (h, w) if size is None else size
        dt = images.dtype
        theta = tf.cast(theta, dt)
        hf, wf = tf.cast(h, dt), tf.cast(w, dt)
        hof, wof = tf.cast(ho, dt), tf.cast(wo, dt)
        xs = (2.0 * tf.range(wof) + 1.0) / wof - 1.0
        ys = (2.0 * tf.range(hof) + 1.0) / hof - 1.0
        xt, yt = tf.meshgrid(xs, ys)
        xt, yt = tf.reshape(xt, [-1]), tf.reshape(yt, [-1])
        mesh = tf.stack([xt, yt, tf.ones_like(xt)])  # (3, Ho*Wo)
        grid = tf.einsum("nij,jk->nik", theta, mesh)  # (N, 2, Ho*Wo)
        x = ((grid[:, 0] + 1.0) * wf - 1.0) * 0.5
        y = ((grid[:, 1] + 1.0) * hf - 1.0) * 0.5
        x0f, y0f = tf.floor(x), tf.floor(y)
        wx, wy = (x - x0f)[..., None], (y - y0f)[..., None]
        x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
        x1, y1 = x0 + 1, y0 + 1
        b = tf.broadcast_to(tf.range(n)[:, None], tf.shape(x0))

        def pixel(yi, xi):
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            idx = tf.stack([b, tf.clip_by_value(yi, 0, h - 1), tf.clip_by_value(xi, 0, w - 1)], axis=-1)
            return tf.gather_nd(images, idx) * tf.cast(inside, dt)[..., None]  # (N, Ho*Wo, C)

        top = (1.0 - wx) * pixel(y0, x0) + wx * pixel(y0, x1)
        bottom = (1.0 - wx) * pixel(y1, x0) + wx * pixel(y1, x1)
        return tf.reshape((1.0 - wy) * top + wy * bottom, tf.stack([n, ho, wo, c]))

    return sample


def _tf_spatial_transformer_class():
    """SpatialTransformer whose call samples with :func:`tf_bilinear_sampler` (same weights, same theta)."""
    import tensorflow as tf

    from fastwarp.tf import SpatialTransformer

    sample = tf_bilinear_sampler()

    class TFGatherSpatialTransformer(SpatialTransformer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.mode != "bilinear" or self.padding_mode != "zeros" or self.align_corners:
                raise ValueError("TFGatherSpatialTransformer: bilinear, zeros, align_corners=False only")
            self.supports_jit = True

        def call(self, inputs):
            x = tf.cast(tf.convert_to_tensor(inputs), tf.float32)
            return sample(x, self.theta(x), self.output_size)

    return TFGatherSpatialTransformer


def build_models(seed: int = 0) -> dict:
    """The CNN, the ST-CNN (fastwarp) and its copy with the TF sampler, the ST-CNNs with equal weights."""
    import keras

    from fastwarp.experiments import stn as stn

    st_class = _tf_spatial_transformer_class()
    shape = (CANVAS, CANVAS, 1)
    keras.utils.set_random_seed(seed)
    cnn = stn.build_classifier(shape, 10, transformer=False)
    keras.utils.set_random_seed(seed)
    st_fw = stn.build_classifier(shape, 10, transformer=True)

    def swap(layer):
        if layer.name == "st":
            return st_class.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    st_tf = keras.models.clone_model(st_fw, clone_function=swap)
    st_tf.set_weights(st_fw.get_weights())
    assert type(st_tf.get_layer("st")) is st_class
    return {"cnn": cnn, "st_fastwarp": st_fw, "st_tf": st_tf}


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-30))


def check_samplers(images: np.ndarray, seed: int = 0) -> dict:
    """fastwarp.tf.affine_warp vs the TF sampler on random non-trivial theta: outputs and gradients."""
    import tensorflow as tf

    import fastwarp.tf as fwtf

    rng = np.random.default_rng(seed)
    n = len(images)
    ang = rng.uniform(-0.8, 0.8, n)
    sc = rng.uniform(0.7, 1.3, n)
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = sc * np.cos(ang), -sc * np.sin(ang)
    theta[:, 1, 0], theta[:, 1, 1] = sc * np.sin(ang), sc * np.cos(ang)
    theta[:, :, 2] = rng.uniform(-0.3, 0.3, (n, 2))
    x, th = tf.constant(images), tf.constant(theta)
    g = tf.constant(rng.standard_normal(images.shape).astype(np.float32))
    sample = tf_bilinear_sampler()
    results = {}
    for name, fn in (("fastwarp", lambda a, t: fwtf.affine_warp(a, t)), ("tf", sample)):
        with tf.GradientTape() as tape:
            tape.watch([x, th])
            out = fn(x, th)
        gi, gt = tape.gradient(out, [x, th], output_gradients=g)
        results[name] = (out.numpy(), gi.numpy(), gt.numpy())
    (fo, fgi, fgt), (to, tgi, tgt) = results["fastwarp"], results["tf"]
    return {"forward_max_abs_diff": float(np.max(np.abs(fo - to))),
            "grad_images_max_rel_diff": _max_rel(fgi, tgi), "grad_theta_max_rel_diff": _max_rel(fgt, tgt)}


def check_models(models: dict, images: np.ndarray) -> dict:
    """The two ST-CNNs' logits on the same batch, at the initial weights and with a rotated theta head."""
    st_fw, st_tf = models["st_fastwarp"], models["st_tf"]
    diffs = {"logits_max_abs_diff": float(np.max(np.abs(st_fw(images).numpy() - st_tf(images).numpy())))}
    saved = [layer.get_layer("st").head.get_weights() for layer in (st_fw, st_tf)]
    a = 0.4  # radians, with a zoom and a shift: the warp is no copy
    bias = np.array([0.9 * np.cos(a), -0.9 * np.sin(a), 0.1, 0.9 * np.sin(a), 0.9 * np.cos(a), -0.05],
                    np.float32)
    for m in (st_fw, st_tf):
        kernel = m.get_layer("st").head.get_weights()[0]
        m.get_layer("st").head.set_weights([kernel, bias])
    st_out = [m.get_layer("st")(images).numpy() for m in (st_fw, st_tf)]
    diffs["st_output_max_abs_diff_rotated"] = float(np.max(np.abs(st_out[0] - st_out[1])))
    logits = [m(images).numpy() for m in (st_fw, st_tf)]
    diffs["logits_max_abs_diff_rotated"] = float(np.max(np.abs(logits[0] - logits[1])))
    for m, w in zip((st_fw, st_tf), saved):
        m.get_layer("st").head.set_weights(w)
    return diffs


def make_train_step(model):
    """A compiled step (tf.function, no XLA): forward, cross-entropy, backward, Adam; returns the loss."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def time_steps(steps: dict, x, y, n: int, warmup: int) -> dict:
    """Per-step seconds of each train step; the steps take turns so load changes hit all alike."""
    for _ in range(max(warmup, 1)):
        for fn in steps.values():
            fn(x, y).numpy()
    times: dict = {k: [] for k in steps}
    for _ in range(n):
        for k, fn in steps.items():
            t0 = time.perf_counter()
            fn(x, y).numpy()
            times[k].append(time.perf_counter() - t0)
    return times


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def format_table(report: dict) -> str:
    lines = [f"{'batch':>5}  {'CNN ms':>8}  {'ST fastwarp ms':>14}  {'ST TF gather ms':>15}  "
             f"{'TF/fastwarp':>11}  {'ST fastwarp/CNN':>15}"]
    for r in report["results"]:
        ms = r["median_ms"]
        lines.append(f"{r['batch']:>5}  {ms['cnn']:>8.2f}  {ms['st_fastwarp']:>14.2f}  {ms['st_tf']:>15.2f}  "
                     f"{r['ratio_tf_over_fastwarp']:>11.2f}  {r['ratio_st_fastwarp_over_cnn']:>15.2f}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256], help="batch sizes (default 64 256)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per model and batch (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--threads", type=int, default=None, help="TF and Numba threads (default: theirs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the report here")
    return p.parse_args(argv)


def main(argv=None, log=print) -> dict:
    """Run the benchmark; print the table; return the report (a JSON-ready dict)."""
    args = parse_args(argv)
    if min(args.batch) < 1 or args.steps < 1:
        raise SystemExit("bench_train_step: --batch and --steps must be >= 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from fastwarp.experiments import stn as stn
    from fastwarp.experiments.benchmark import library_versions, machine_info, set_threads, thread_counts

    set_threads(args.threads)
    report: dict = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
                    "load_before": _load(), "steps": args.steps, "warmup": args.warmup,
                    "canvas": [CANVAS, CANVAS, 1], "optimizer": "Adam(1e-3)",
                    "sampler": {"mode": "bilinear", "padding": "zeros", "align_corners": False},
                    "models": {k: LABELS[k] for k in MODELS}, "results": []}
    data = stn.make_distorted_digits(args.seed, canvas=CANVAS, train_copies=1, test_copies=1)
    rng = np.random.default_rng(args.seed)

    check_x = data.x_train[:max(min(args.batch), 4)]
    report["check_samplers"] = chk = check_samplers(check_x, args.seed)
    log(f"samplers (random theta, {len(check_x)} images): forward max |diff| "
        f"{chk['forward_max_abs_diff']:.2e}, grad images {chk['grad_images_max_rel_diff']:.2e}, "
        f"grad theta {chk['grad_theta_max_rel_diff']:.2e} (relative)")
    assert chk["forward_max_abs_diff"] < FORWARD_TOL, chk
    assert chk["grad_images_max_rel_diff"] < GRAD_RTOL and chk["grad_theta_max_rel_diff"] < GRAD_RTOL, chk

    for batch in args.batch:
        idx = rng.choice(len(data.x_train), batch, replace=batch > len(data.x_train))
        x = tf.constant(data.x_train[idx])
        y = tf.constant(data.y_train[idx])
        models = build_models(args.seed)
        mchk = check_models(models, data.x_train[idx])
        log(f"batch {batch}: ST-CNN fastwarp vs TF sampler, logits max |diff| "
            f"{mchk['logits_max_abs_diff']:.2e}, "
            f"rotated theta: ST output {mchk['st_output_max_abs_diff_rotated']:.2e}, "
            f"logits {mchk['logits_max_abs_diff_rotated']:.2e}")
        assert mchk["st_output_max_abs_diff_rotated"] < FORWARD_TOL, mchk
        assert max(mchk["logits_max_abs_diff"], mchk["logits_max_abs_diff_rotated"]) < 1e-4, mchk
        steps = {k: make_train_step(models[k]) for k in MODELS}
        times = time_steps(steps, x, y, args.steps, args.warmup)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        report["results"].append({
            "batch": batch, "median_ms": med, "min_ms": {k: min(v) * 1e3 for k, v in times.items()},
            "times_ms": {k: [t * 1e3 for t in v] for k, v in times.items()}, "model_check": mchk,
            "ratio_tf_over_fastwarp": med["st_tf"] / med["st_fastwarp"],
            "ratio_st_fastwarp_over_cnn": med["st_fastwarp"] / med["cnn"],
            "ratio_st_tf_over_cnn": med["st_tf"] / med["cnn"]})
    report["load_after"] = _load()
    report["threads"] = thread_counts()
    report["versions"] = dict(library_versions(), keras=__import__("keras").__version__)
    m, v = report["machine"], report["versions"]
    log(f"\n{m['cpu']}, {m['usable_cores']} usable cores, "
        f"load {report['load_before']} -> {report['load_after']}")
    log(f"threads {report['threads']}; tensorflow {v.get('tensorflow')}, keras {v['keras']}, "
        f"fastwarp {v['fastwarp']}, numba {v['numba']} ({v['numba_threading_layer']})")
    log(f"one training step (forward, backward, Adam), 42x42x1 digits, median of {args.steps} steps, ms:")
    log(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
