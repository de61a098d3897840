"""Keras augmentation layers in a tf.data pipeline: Keras's own chain against fastwarp's layers.

The setup of issue 13: 512 uint8 images 224x224x3, batches of 32, ``map(..., num_parallel_calls=
AUTOTUNE)``, then ``prefetch``; the pipeline is iterated to the end and timed (images per second,
median of --repeats runs, each after one untimed warm-up run).  Three pipelines:

* Keras: ``keras.Sequential([RandomRotation, RandomZoom, RandomTranslation])`` (float32 out);
* fastwarp chain: the same three layers from ``fastwarp.tf.layers`` (uint8 out);
* fastwarp RandomAffine: ``RandomAffine(rotation=, zoom=, translation=)``, one warp (uint8 out).

Usage: python bench/bench_keras_layers.py [--images 512] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    import fastwarp.tf.layers as L
    from fastwarp.experiments.benchmark import cpu_family, cpu_model

    rot, zoom, shift = 0.1, 0.2, 0.1
    images = np.random.default_rng(0).integers(0, 256, (args.images, 224, 224, 3), dtype=np.uint8)

    def keras_chain(layers):
        return keras.Sequential([layers.RandomRotation(rot, seed=1), layers.RandomZoom(zoom, seed=2),
                                 layers.RandomTranslation(shift, shift, seed=3)])

    pipelines = {
        "keras chain (RandomRotation+RandomZoom+RandomTranslation)": keras_chain(keras.layers),
        "fastwarp chain (the same three layers)": keras_chain(L),
        "fastwarp RandomAffine (one warp)": L.RandomAffine(rotation=rot, zoom=zoom, translation=shift,
                                                           seed=1),
    }
    results = {}
    for name, model in pipelines.items():
        ds = (tf.data.Dataset.from_tensor_slices(images).batch(args.batch)
              .map(lambda x, m=model: m(x, training=True), num_parallel_calls=tf.data.AUTOTUNE)
              .prefetch(tf.data.AUTOTUNE))
        for _ in ds:  # warm-up: tracing, Numba's compile or cache load
            pass
        rates = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for x in ds:
                dtype = x.dtype.name
            rates.append(args.images / (time.perf_counter() - t0))
        results[name] = {"images_per_s": statistics.median(rates), "runs": rates, "dtype": dtype}
        print(f"{name:60s} {statistics.median(rates):8.0f} img/s ({dtype} out)")
    base = results["keras chain (RandomRotation+RandomZoom+RandomTranslation)"]["images_per_s"]
    for r in results.values():
        r["ratio_to_keras"] = r["images_per_s"] / base
    print("ratios to Keras: " + ", ".join(f"{n.split(' (')[0]} {r['ratio_to_keras']:.1f}x"
                                          for n, r in results.items()))
    print(f"machine: {cpu_model()}; {cpu_family()}; {os.cpu_count()} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu_model(), "family": cpu_family(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
