"""`fastwarp precompile` fills Numba's cache so that a new process compiles nothing."""

from __future__ import annotations

import json
import subprocess
import sys

from fastwarp.cli import main

CHECK = """
import json, numpy as np
import fastwarp as fw
from fastwarp.cpu import generic as G
x = np.random.default_rng(0).random((1, 7, 9, 3), dtype=np.float32)
fw.affine_warp(x, np.array([[1.0, 0.2, 0.1], [0.0, 0.8, 0.0]]))
fw.grid_sample(x, fw.affine_grid(np.eye(2, 3)[None], (4, 5)))
kernels = {"forward": G.forward_kernel(0, 0, 3, False), "grid": G.grid_kernel}
print(json.dumps({name: [sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values())]
                  for name, k in kernels.items()}))
"""


def test_precompile_then_a_new_process_loads_from_the_cache(capsys):
    assert main(["precompile", "--dtype", "float32", "--part", "forward"]) == 0
    text = capsys.readouterr().out
    for label in ("affine_grid", "affine_warp float32", "grid_sample float32", "done in"):
        assert label in text, label
    assert "backward" not in text
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    for name, (hits, misses) in stats.items():
        assert hits >= 1 and misses == 0, (name, hits, misses)


def test_precompile_rejects_an_unknown_dtype(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["precompile", "--dtype", "int16"])
    assert e.value.code == 2
    assert "invalid choice: 'int16'" in capsys.readouterr().err


CHECK_FLAGS = """
import json, numpy as np
import fastwarp as fw
from fastwarp.cpu import generic as G
x = np.random.default_rng(0).random((1, 7, 9, 1))
fw.perspective_warp(x, np.eye(3) + 0.05, mode="bicubic", padding_mode="wrap")
k = G.forward_kernel(2, 4, 1, False)  # bicubic, wrap, one channel
print(json.dumps([sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values())]))
"""


def test_precompile_chosen_flags(capsys):
    """--mode/--padding/--channels compile those combinations (here for a projective warp, which
    shares the affine warp's kernel), and a new process loads them from the cache."""
    assert main(["precompile", "--dtype", "float64", "--part", "forward", "--mode", "bicubic",
                 "--padding", "wrap", "--channels", "1"]) == 0
    text = capsys.readouterr().out
    assert "modes bicubic; padding wrap; channels 1" in text
    assert "affine_warp float64 bicubic/wrap/C=1" in text
    r = subprocess.run([sys.executable, "-c", CHECK_FLAGS], capture_output=True, text=True, check=True)
    hits, misses = json.loads(r.stdout.strip().splitlines()[-1])
    assert hits >= 1 and misses == 0, (hits, misses)


def test_precompile_rejects_a_bad_channel_count(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["precompile", "--channels", "0"])
    assert e.value.code == 2
    assert "expected a positive channel count, got '0'" in capsys.readouterr().err
