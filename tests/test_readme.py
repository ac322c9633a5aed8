"""The README's figures come from runs saved in docs/: its one-screen table is exactly what
`python benchmarks/report.py FILE --summary` prints for the file it names, and the machine facts
quoted beside it are that file's."""

import os
import re

from rnnkit import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_summary_table_is_the_saved_run():
    text = _readme()
    m = re.search(r"<!-- summary: (\S+) .*?-->\n(.*?)\n<!-- /summary -->", text, re.S)
    assert m, "README has no <!-- summary: FILE --> block"
    results, info = bench.from_pytest_json(os.path.join(ROOT, m.group(1)))
    assert m.group(2).strip() == bench.summary(results).strip()
    intro = text[: m.start()]
    assert m.group(1) in intro
    assert f"sgemm {info['sgemm_gflops']:.0f} GFLOP/s" in intro
    assert f"{info['threads']} threads" in intro and f"pointwise ISA {info['isa']}" in intro


def test_every_saved_run_the_readme_names_exists():
    for path in set(re.findall(r"docs/[\w.-]+\.(?:json|txt|png)", _readme())):
        assert os.path.exists(os.path.join(ROOT, path)), path
