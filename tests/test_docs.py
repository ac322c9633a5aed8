"""The documentation's code runs: every ``.. code-block:: python`` in docs/*.rst executes as written
(each block in a fresh namespace, the torch ones only where torch is installed)."""

import pathlib
import re
import textwrap

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def _blocks():
    for page in sorted(DOCS.glob("*.rst")):
        text = page.read_text()
        for i, m in enumerate(re.finditer(r"\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text)):
            code = textwrap.dedent(m.group(1))
            if ">>>" in code:  # an interactive transcript whose output depends on the machine
                continue
            yield pytest.param(code, id=f"{page.stem}-{i}")


BLOCKS = list(_blocks())


def test_the_docs_have_code_to_run():
    assert len(BLOCKS) >= 3, [b.id for b in BLOCKS]


@pytest.mark.parametrize("code", BLOCKS)
def test_code_block_runs(code):
    if "torch" in code:
        pytest.importorskip("torch")
    exec(compile(code, "<docs>", "exec"), {"__name__": "docs_example"})
