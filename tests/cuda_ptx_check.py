"""Compile every fastwarp CUDA kernel to PTX for a real GPU target (run by tests/test_cuda_sim.py).

Runs in its own process with the real numba.cuda (never the simulator), so it
needs numba-cuda and NVVM (``libnvvm``, from the ``nvidia-cuda-nvcc-cu12``
wheel that ``fastwarp[cuda]`` installs) but no GPU.  numba-cuda compiles the
device functions a kernel calls for the *current* device's compute capability
and asks the driver for it; without a GPU this script answers that question
itself (``--cc``, default 7.5; with a GPU, the GPU's own) so the whole kernel, ``fastwarp.core.coords``
included, goes through NVVM.  Exit status 0: everything compiled; 3: NVVM is
missing (the caller reports it); anything else: a compile error (printed).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.pop("NUMBA_ENABLE_CUDASIM", None)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cc", default=None,
                        help="compute capability to target, e.g. 8.0 (default: the GPU's, else 7.5)")
    cc_arg = parser.parse_args().cc

    import numpy as np
    from numba import cuda, types
    from numba.np.numpy_support import from_dtype

    if "simulator" in cuda.detect.__module__:
        print("cuda_ptx_check: numba.cuda is the simulator; cannot compile PTX", file=sys.stderr)
        return 2
    from numba.cuda.cudadrv import nvvm

    if not nvvm.is_available():
        print("cuda_ptx_check: NVVM (libnvvm) not found; pip install nvidia-cuda-nvcc-cu12",
              file=sys.stderr)
        return 3
    if cuda.is_available():
        cc = tuple(cc_arg.split(".")) if cc_arg else cuda.get_current_device().compute_capability
        cc = tuple(int(v) for v in cc)
    else:
        cc = tuple(int(v) for v in (cc_arg or "7.5").split("."))
        import numba.cuda.dispatcher as dispatcher

        class _Device:  # what compile_device asks the driver for
            compute_capability = cc

        dispatcher.get_current_device = lambda: _Device()

    from fastwarp.gpu import kernels as CK

    f64 = types.float64
    i64 = types.int64
    flag = types.boolean
    fill = types.Array(f64, 1, "C")
    count = 0
    # any-layout ("A") arrays: the general case of the indexing code; C-contiguous arrays
    # compile the same source with simpler address arithmetic
    for layout in ("A",):
        grid_t = types.Array(types.float32, 4, layout)
        theta = types.Array(f64, 3, layout)  # (N, 2, 3) affine or (N, 3, 3) projective
        ptx, _ = cuda.compile_ptx(CK.grid_kernels().matrix_grid.py_func,
                                  (theta, types.Array(f64, 4, "C"), flag), cc=cc)
        count += 1
        for dt in (np.float32, np.float64, np.uint8, np.uint16, np.float16):
            ks = CK.kernels(dt)
            img = types.Array(from_dtype(np.dtype(dt)), 4, layout)
            out = types.Array(from_dtype(np.dtype(dt)), 4, "C")
            variants = [("warp", (img, theta, fill, out, i64, i64, flag))]
            if dt in (np.float32, np.uint8):  # grid_sample's loads and stores are warp's
                variants.append(("grid_sample", (img, grid_t, fill, out, i64, i64, flag, flag)))
            for name, sig in variants:
                ptx, _ = cuda.compile_ptx(getattr(ks, name).py_func, sig, cc=cc)
                assert ".entry" in ptx, name
                count += 1
        for dt in (np.float32, np.uint16):  # the antialias filter: a float and an integer store
            img = types.Array(from_dtype(np.dtype(dt)), 4, layout)
            out = types.Array(from_dtype(np.dtype(dt)), 4, "C")
            sig = (img, types.Array(f64, 3, "C"), fill, out, flag, i64, flag)
            ptx, _ = cuda.compile_ptx(CK.antialias_kernels(dt).antialias.py_func, sig, cc=cc)
            assert ".entry" in ptx, "antialias"
            count += 1
        for dt in (np.float32, np.float64, np.float16):
            ks = CK.backward_kernels(dt)
            img = types.Array(from_dtype(np.dtype(dt)), 4, layout)
            acc = np.float64 if dt == np.float64 else np.float32
            buf = types.Array(from_dtype(np.dtype(acc)), 4, "C")
            gout = types.Array(types.float32, 4, layout)
            duvw = types.Array(f64, 4, "C")
            partial = types.Array(f64, 4, "C")
            ggrid = types.Array(types.float32, 4, "C")
            variants = [("warp_backward", (gout, img, theta, fill, buf, partial, i64, i64, flag)),
                        ("grid_sample_backward", (gout, img, grid_t, fill, buf, ggrid, i64, i64, flag, flag))]
            if dt == np.float32:  # the deterministic twins run the same device functions
                variants += [("warp_backward_chunks", (gout, img, theta, fill, buf, duvw, i64, i64, flag)),
                             ("grid_sample_backward_chunks",
                              (gout, img, grid_t, fill, buf, ggrid, i64, i64, flag, flag))]
            if dt == np.float32:  # the antialias gradient (float16 images differ only in their loads)
                aks = CK.antialias_backward_kernels(dt)
                h3 = types.Array(f64, 3, "C")
                sig = (gout, img, h3, fill, buf, h3, i64, flag, i64, flag, flag, flag)
                ptx, _ = cuda.compile_ptx(aks.antialias_backward.py_func, sig, cc=cc)
                assert ".entry" in ptx and "atom.global.add" in ptx, "antialias_backward"
                ptx, _ = cuda.compile_ptx(aks.mask_shrinking.py_func, (gout, h3, ggrid), cc=cc)
                assert ".entry" in ptx, "mask_shrinking"
                count += 2
            for name, sig in variants:
                ptx, _ = cuda.compile_ptx(getattr(ks, name).py_func, sig, cc=cc)
                assert ".entry" in ptx, name
                if "chunks" not in name:  # the scatter of the fast backward is atomic
                    assert "atom.global.add" in ptx, name
                if name == "warp_backward":  # theta: tree reduction in shared memory
                    assert "bar.sync" in ptx and ".shared" in ptx, name
                count += 1
    rk = CK.reduce_kernels()
    c64 = types.Array(f64, 4, "C")
    f32_1d = types.Array(types.float32, 1, "C")
    for fn, sig in ((rk.fill_zero, (f32_1d,)),
                    (rk.cast, (f32_1d, types.Array(types.float16, 1, "C"))),
                    (rk.sum_chunks, (types.Array(types.float32, 4, "C"),) * 2),
                    (rk.theta_from_partials, (types.Array(f64, 4, "C"), types.Array(f64, 3, "C"))),
                    (rk.theta_rows, (c64, types.Array(f64, 3, "C"), flag)),
                    (rk.theta_grad, (types.Array(f64, 3, "C"), types.Array(f64, 3, "C"), flag)),
                    (rk.sum_batch, (types.Array(f64, 3, "C"), types.Array(f64, 3, "C")))):
        cuda.compile_ptx(fn.py_func, sig, cc=cc)
        count += 1
    print(f"cuda_ptx_check: compiled {count} kernels to PTX for sm_{cc[0]}{cc[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
