"""Turn a :func:`fastwarp.experiments.benchmark.run` report into a text table, a JSON file and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

from .benchmark import BASELINES, FLOOR_TARGET

OP_TITLES = {"forward": "forward", "backward": "forward + backward (images and theta)"}
MISS = "!"
TARGETS = ("targets (fastwarp at least this much faster): forward: OpenCV 1.5x (1.3x on large); "
           "PyTorch (both variants) 3x; TF IPTv3 5x; NumPy 30x; the allocating call within 1.2x of out= "
           "(out= column: its ratio at least 0.83); forward+backward: PyTorch 2.5x, TF gather and TF XLA 15x")


def _label(lib: str) -> str:
    return BASELINES[lib].label if lib in BASELINES else lib


def _rows(report: dict, op: str):
    """(row key, {library: result}) in run order, and the libraries in column order."""
    rows: dict = {}
    libs: list[str] = []
    for r in report["results"]:
        if r["op"] != op:
            continue
        key = (r["workload"], r["dtype"], "x".join(map(str, r["shape"])))
        rows.setdefault(key, {})[r["library"]] = r
        if r["library"] not in libs:
            libs.append(r["library"])
    order = [lib for lib in BASELINES if lib in libs] + [lib for lib in libs if lib not in BASELINES]
    return rows, order


def _cell(r: dict | None, lib: str) -> str:
    if r is None:
        return "-"
    ms = r["median_ms"]
    text = f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"
    if lib != "fastwarp" and r.get("ratio") is not None:
        text += f" ({r['ratio']:.2f}x{MISS if r.get('meets_target') is False else ''})"
    return text


def format_table(report: dict) -> str:
    """The report as aligned text: one table per operation, then floor, cold start and notes."""
    lines = []
    m = report["machine"]
    lines.append(f"machine: {m['cpu']}, {m['usable_cores']} usable cores; threads: "
                 + ", ".join(f"{k}={v}" for k, v in report["threads"].items()))
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in report.get("versions", {}).items()))
    lines.append("cells: median ms per call (ratio = baseline time / fastwarp time; "
                 f"'{MISS}' = fastwarp misses its target there)")
    for op in ("forward", "backward"):
        rows, libs = _rows(report, op)
        if not rows:
            continue
        header = ["workload", "dtype", "shape"] + [_label(lib) for lib in libs]
        body = [[w, d, s] + [_cell(cells.get(lib), lib) for lib in libs] for (w, d, s), cells in rows.items()]
        widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
        lines.append("")
        lines.append(OP_TITLES[op])
        for row in [header] + body:
            lines.append("  ".join(c.ljust(wd) if i < 3 else c.rjust(wd)
                                   for i, (c, wd) in enumerate(zip(row, widths))).rstrip())
    misses = [r for r in report["results"] if r.get("meets_target") is False]
    if any(r.get("target") for r in report["results"]):
        lines.append("")
        lines.append(TARGETS)
        lines.append(f"cells missing their target: {len(misses)} of "
                     f"{sum(r.get('meets_target') is not None for r in report['results'])}")
    mf = report.get("memory_floor")
    if mf:
        lines.append("")
        lines.append(
            f"memory floor ({mf['workload']} {mf['dtype']}): {mf['bytes_moved'] / 1e6:.1f} MB moved "
            f"(input read + output written) / {mf['bandwidth_GBps']:.1f} GB/s parallel copy = "
            f"{mf['floor_ms']:.2f} ms; fastwarp out= {mf['fastwarp_out_ms']:.2f} ms reaches "
            f"{100 * mf['fraction_of_floor']:.0f}% of the floor (target >= {100 * FLOOR_TARGET:.0f}%)"
            + ("" if mf["meets_target"] else f" {MISS}"))
    if report.get("patterns"):
        from .patterns import format_patterns

        lines.append("")
        lines.extend(format_patterns(report["patterns"]))
    if report.get("breadth"):
        from .breadth import format_breadth

        lines.append("")
        lines.append(format_breadth(report["breadth"]))
    for cs in report.get("cold_start", []):
        lines.append(f"cold start (Numba cache {cs['numba_cache']}): "
                     f"import fastwarp {cs['import_ms']:.0f} ms, "
                     f"first affine_warp {cs['first_call_ms']:.0f} ms, second {cs['second_call_ms']:.2f} ms")
    for hint in report.get("skipped", {}).values():
        lines.append(hint)
    for note in report.get("notes", []):
        lines.append("note: " + note)
    return "\n".join(lines)


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")


def _bars(ax, report: dict, op: str) -> bool:
    import numpy as np

    rows, libs = _rows(report, op)
    if not rows:
        ax.set_visible(False)
        return False
    width = 0.8 / len(libs)
    xs = np.arange(len(rows))
    for k, lib in enumerate(libs):
        vals = [cells[lib]["median_ms"] if lib in cells else np.nan for cells in rows.values()]
        ax.bar(xs + (k - (len(libs) - 1) / 2) * width, vals, width, label=_label(lib))
    ax.set_xticks(xs, [f"{w}\n{d}" for (w, d, _) in rows])
    ax.set_yscale("log")
    ax.set_ylabel("median ms per call (log)")
    ax.set_title(OP_TITLES[op] + " (lower is better)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3, which="both")
    return True


def _lines(ax, series: dict, xlabel: str, title: str, logx: bool = True) -> None:
    from matplotlib.ticker import NullLocator

    for lib, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=_label(lib))
    if logx:
        ax.set_xscale("log", base=2)
    ticks = sorted({p[0] for pts in series.values() for p in pts})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off() if not logx else ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("median ms per call (log)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


def plot(report: dict, path: Path) -> None:
    """Bars per workload (forward, forward+backward) and the scaling curves, in one PNG.

    Raises :class:`fastwarp.core.optional.MissingDependency` without matplotlib.
    """
    from ..core.optional import optional_import

    optional_import("matplotlib", "plot", "the benchmark plot").use("Agg")
    import matplotlib.pyplot as plt

    sc = report.get("scaling")
    ncols = 3 if sc else 2
    fig, axes = plt.subplots(2 if sc else 1, ncols, figsize=(6 * ncols, 9 if sc else 4.5), squeeze=False)
    _bars(axes[0][0], report, "forward")
    _bars(axes[0][1], report, "backward")
    if sc:
        _lines(axes[0][2], sc["batch"], "batch size (224x224x3 float32)", "time vs batch size")
        _lines(axes[1][0], sc["side"], "image side (batch 4, float32)", "time vs image side")
        _lines(axes[1][1], sc["threads"], "threads", "time vs threads (32x224x224x3 float32)", logx=False)
        info = axes[1][2]
    else:
        info = axes[0][-1] if not axes[0][1].get_visible() else None
    if info is not None:
        info.axis("off")
        info.set_visible(True)
        m = report["machine"]
        text = [f"{m['cpu']}", f"{m['usable_cores']} usable cores",
                "threads: " + ", ".join(f"{k}={v}" for k, v in report["threads"].items())]
        mf = report.get("memory_floor")
        if mf:
            text.append(f"memory floor ({mf['workload']}): {mf['floor_ms']:.2f} ms at "
                        f"{mf['bandwidth_GBps']:.1f} GB/s;")
            text.append(f"fastwarp out= reaches {100 * mf['fraction_of_floor']:.0f}% of it")
        for cs in report.get("cold_start", []):
            text.append(f"cold start, cache {cs['numba_cache']}: import {cs['import_ms']:.0f} ms, "
                        f"first call {cs['first_call_ms']:.0f} ms")
        info.text(0, 1, "\n".join(text), va="top", family="monospace", fontsize=8, wrap=True)
    fig.suptitle("fastwarp bench: bilinear, border padding, rotation 30 deg, scale 0.9, shift (5, -3) px")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
