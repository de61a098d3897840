"""How fastwarp and OpenCV hold up in the call patterns of real code, per helper spin time.

    python bench/bench_call_patterns.py                       # the default and a sweep of spin times
    python bench/bench_call_patterns.py --spin 0 300          # only these FASTWARP_SPIN_US values
    python bench/bench_call_patterns.py --workload augment --dtype uint8

The forward kernels' helper threads poll for the next call for ``FASTWARP_SPIN_US``
microseconds after each call (yielding their core to any other runnable thread),
then sleep.  Each setting runs in a fresh process, which
times, for one workload (default: seed, 2x400x400x3 float32, bilinear, border):

* ``back_to_back``: calls in a tight loop;
* ``python_1ms``: about 1 ms of single-threaded Python between calls;
* ``after_tf``: a TensorFlow op (the same warp with ImageProjectiveTransformV3)
  right before each call;
* ``after_idle``: 20 ms of sleep before each call;
* ``tiny``: back-to-back calls on a 1x16x16x3 batch (where threads cannot help);

for fastwarp (``out=``) and for OpenCV (``cv2.warpAffine`` per image into
preallocated buffers), each library in its own block of calls.  It then
measures what the policy costs the code that runs *next*: a NumPy op (a 1 MB
``np.add``) and a TF op (a 256x256 matmul), timed right after a fastwarp call
and compared with the same op after 20 ms of idle.

Every cell is the median over many calls; ratios are OpenCV's time over
fastwarp's (above 1: fastwarp is faster).  Timings depend on the machine and on
what else runs on it: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from fastwarp.cpu.sched import SPIN_US_DEFAULT
from fastwarp.experiments.patterns import PATTERNS

CHILD = r"""
import json, os, sys
spin = os.environ.get("FASTWARP_SPIN_US")
import numba
from fastwarp.experiments.patterns import measure
from fastwarp.experiments.benchmark import cpu_model
cfg = json.loads(sys.argv[1])
res = measure(cfg["workload"], cfg["dtype"], cfg["calls"])
res.update(spin=spin, wait_policy=os.environ.get("OMP_WAIT_POLICY"),
           threading_layer=numba.threading_layer(), cpu=cpu_model())
print(json.dumps(res))
"""


def run_policy(spin: str | None, cfg: dict) -> dict:
    """Run the child in a fresh process with FASTWARP_SPIN_US=spin (None: fastwarp's default)."""
    env = {k: v for k, v in os.environ.items() if k != "FASTWARP_SPIN_US"}
    if spin is not None:
        env["FASTWARP_SPIN_US"] = spin
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], env=env, capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"child failed for spin={spin}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def format_rows(results: list[dict]) -> str:
    head = ("| policy | " + " | ".join(f"{p} fastwarp / OpenCV (ms)" for p in PATTERNS)
            + " | NumPy op after fastwarp / idle (us) | TF op after fastwarp / idle (us) |")
    lines = [head, "|" + "---|" * (len(PATTERNS) + 3)]
    for r in results:
        label = f"spin {r['spin']} us" if r["spin"] else f"fastwarp's default (spin {SPIN_US_DEFAULT} us)"
        cells = []
        for p in PATTERNS:
            f, o = r["fastwarp"][p] * 1e3, r["opencv"][p] * 1e3
            cells.append(f"{f:.3g} / {o:.3g} ({o / f:.2f}x)")
        n = r["next"]
        cells.append(f"{n['numpy_after_fastwarp'] * 1e6:.0f} / {n['numpy_after_idle'] * 1e6:.0f}")
        cells.append(f"{n['tf_after_fastwarp'] * 1e6:.0f} / {n['tf_after_idle'] * 1e6:.0f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spin", nargs="+", default=None,
                   help="FASTWARP_SPIN_US values to sweep (default: fastwarp's default, 0, 300, 10000)")
    p.add_argument("--workload", default="seed")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--calls", type=int, default=200, help="calls per cell (default 200)")
    p.add_argument("--json", help="write the raw results here")
    args = p.parse_args(argv)
    spins = [None, "0", "300", "10000"] if args.spin is None else args.spin
    cfg = {"workload": args.workload, "dtype": args.dtype, "calls": args.calls}
    results = []
    for spin in spins:
        t0 = time.perf_counter()
        results.append(run_policy(spin, cfg))
        print(f"policy spin={spin or 'default'}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"{args.workload} {args.dtype}, {results[0]['cpu']}, layer {results[0]['threading_layer']}")
    print(format_rows(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
