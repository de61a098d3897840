"""A light core: `import fastwarp` needs none of the optional libraries, and the commands that
draw figures say which extra brings matplotlib when it is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fastwarp.cli import main

OPTIONAL = ("matplotlib", "tensorflow", "cv2", "torch", "dask", "distributed", "keras", "isal")

CHECK = f"""
import sys
import fastwarp, fastwarp.reference, fastwarp.transforms, fastwarp.folder, fastwarp.pipeline, fastwarp.io
import fastwarp.augment
import fastwarp.cli
fastwarp.cli.build_parser()
print(",".join(m for m in {OPTIONAL!r} if m in sys.modules))
"""


def test_import_and_cli_parser_load_no_optional_library():
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "", f"imported at start-up: {r.stdout.strip()}"


def test_core_dependencies_are_the_light_ones():
    from pathlib import Path

    import tomllib

    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    deps = {d.split(">")[0].split("=")[0].strip() for d in meta["project"]["dependencies"]}
    assert deps == {"numpy", "numba", "pillow", "tqdm"}
    assert "matplotlib>=3.7" in meta["project"]["optional-dependencies"]["plot"]


def _hide_matplotlib(monkeypatch):
    # `import matplotlib` (and its pyplot, should an earlier test have loaded it) now raises ImportError
    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)


def test_demo_names_the_plot_extra(monkeypatch, capsys, tmp_path):
    _hide_matplotlib(monkeypatch)
    from fastwarp.core.optional import MissingDependency, optional_import

    with pytest.raises(MissingDependency, match=r"a figure needs matplotlib.*pip install 'fastwarp\[plot\]'"):
        optional_import("matplotlib.pyplot", "plot", "a figure")
    assert main(["demo", "--out", str(tmp_path / "d.png")]) == 2
    err = capsys.readouterr().err
    assert "fastwarp demo: fastwarp demo's figure needs matplotlib" in err
    assert "pip install 'fastwarp[plot]'" in err
    assert not (tmp_path / "d.png").exists()


def test_bench_without_matplotlib_writes_table_and_json(monkeypatch, capsys, tmp_path):
    _hide_matplotlib(monkeypatch)
    out = tmp_path / "b"
    rc = main(["bench", "--shape", "1,6,7,3", "--libraries", "fastwarp,numpy", "--skip", "scaling",
               "--skip", "cold-start", "--skip", "backward", "--skip", "floor", "--out", str(out)])
    assert rc == 0
    assert (out / "bench.txt").exists() and (out / "bench.json").exists()
    assert not (out / "bench.png").exists()
    assert "no plot: the benchmark plot needs matplotlib" in capsys.readouterr().err
