"""The cache stamp of fastwarp's kernels covers every kernel source file (``fastwarp.core.cache``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from numba.core import caching

from fastwarp.core import cache

# a new process calls one small kernel of core.coords and reports whether it came from the cache
CALL = """
import json, os, sys
# the copy under test, ahead of an editable install's finder and of sys.path
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
sys.path.insert(0, os.environ["FASTWARP_COPY"])
from fastwarp.core import coords
coords.unnormalize(0.25, 7, False)
s = coords.unnormalize.stats
print(json.dumps([coords.__file__, sum(s.cache_hits.values()), sum(s.cache_misses.values())]))
"""


def _locator(fn):
    return caching.CompileResultCacheImpl(fn)._locator


def test_kernel_files_get_the_stamped_locator_and_others_numbas_own():
    from fastwarp.cpu import rows

    loc = _locator(rows.project_point.py_func)
    assert getattr(loc, "_fastwarp", False)
    own, digest = loc.get_source_stamp()
    assert digest == cache.sources_digest() and len(digest) == 32
    assert own == caching._hash_source_file(rows.__file__, *_mtime_size(rows.__file__))

    def user_function(x):
        return x

    assert not getattr(_locator(user_function), "_fastwarp", False)


def _mtime_size(path):
    st = os.stat(path)
    return st.st_mtime, st.st_size


def test_the_digest_follows_every_file(tmp_path):
    a, b = tmp_path / "cpu", tmp_path / "core"
    a.mkdir()
    b.mkdir()
    (a / "x.py").write_text("X = 1\n")
    (b / "y.py").write_text("Y = 2\n")
    (b / "notes.txt").write_text("not source")
    dirs = (str(a), str(b))
    first = cache.sources_digest(dirs)
    assert cache.sources_digest(dirs) == first
    (b / "notes.txt").write_text("still not source")
    assert cache.sources_digest(dirs) == first
    (b / "y.py").write_text("Y = 3\n")
    changed = cache.sources_digest(dirs)
    assert changed != first
    (b / "y.py").write_text("Y = 2\n")
    assert cache.sources_digest(dirs) == first
    (a / "z.py").write_text("")
    assert cache.sources_digest(dirs) not in (first, changed)


def test_an_edit_of_another_kernel_file_recompiles_and_no_edit_loads(tmp_path):
    """coords.unnormalize's own file stays as it is; an edit of cpu/simd.py (which other
    kernels inline) must still recompile it, and a new process after that loads it again."""
    import shutil

    import fastwarp

    pkg = tmp_path / "src" / "fastwarp"
    shutil.copytree(os.path.dirname(fastwarp.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), FASTWARP_COPY=str(pkg.parent))

    def run():
        r = subprocess.run([sys.executable, "-c", CALL], capture_output=True, text=True, env=env, check=True)
        where, hits, misses = json.loads(r.stdout.strip().splitlines()[-1])
        assert where.startswith(str(pkg)), where
        return hits, misses

    assert run() == (0, 1)  # an empty cache: compiled
    assert run() == (1, 0)  # loaded
    with open(pkg / "cpu" / "simd.py", "a") as f:
        f.write("# an edit\n")
    assert run() == (0, 1)  # compiled again
    assert run() == (1, 0)
