"""Sphinx configuration of rnnkit's documentation: the API reference from the numpydoc docstrings,
a getting-started page, one page per backend, and the benchmark page (its table generated from the
run saved in this folder). Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html``."""

from __future__ import annotations

import json
import pathlib

import rnnkit
from rnnkit import bench

HERE = pathlib.Path(__file__).parent

project = "rnnkit"
author = "the rnnkit developers"
copyright = "2026, the rnnkit developers"
release = version = rnnkit.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc"]
exclude_patterns = ["_build", "_generated/*.inc"]
templates_path: list[str] = []

autosummary_generate = False  # the API pages are written by hand, each with its autosummary table
default_role = "py:obj"  # `name` links to the API entry when there is one
autodoc_default_options = {"members": True}  # no "Bases:" lines: the bases are private
autodoc_typehints = "none"  # the numpydoc sections say the types; signatures stay short
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "pydata_sphinx_theme"
html_title = f"rnnkit {release}"
html_static_path: list[str] = []
html_sidebars = {page: [] for page in ("index", "getting-started", "backends", "benchmarks")}
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}

# The benchmark page's table: the README's summary of the same saved run, as a list-table.
BENCH_RUN = "bench-2core-zen5-avx512-full.json"


def _summary_table() -> str:
    rows = [r.strip().strip("|").split("|") for r in bench.summary(bench.from_pytest_json(str(HERE / BENCH_RUN))[0]).splitlines()]
    rows = [rows[0]] + rows[2:]  # drop the markdown separator
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        cells = [c.strip() for c in row]
        out.append(f"   * - {cells[0]}")
        out.extend(f"     - {c}" for c in cells[1:])
    return "\n".join(out) + "\n"


def _machine() -> str:
    run = json.loads((HERE / BENCH_RUN).read_text())
    return (
        f"Run of {run['date']} (``{run['command']}``): {run['cpu']}, {run['threads']} threads, pointwise ISA "
        f"{run['isa']} (CPU features {run['cpu_features']}), OpenBLAS sgemm {run['sgemm_gflops']:.0f} GFLOP/s, "
        f"torch {run['torch']}, float32.\n"
    )


gen = HERE / "_generated"
gen.mkdir(exist_ok=True)
(gen / "summary.inc").write_text(_summary_table())
(gen / "machine.inc").write_text(_machine())
