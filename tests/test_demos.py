"""The classic uses reach their stated results (seeded, small sizes), and the `rnnkit` command
behaves: help for each subcommand, clear messages and non-zero exits for bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest
from _helpers import make_case

from rnnkit import functional as F
from rnnkit.demos import charlm, gradnorm, hello, sentiment


def test_hello_predicts_ello(backend):
    rnn, out, losses = hello.train(steps=200, backend=backend, log=None)
    p, pred = hello.predict(rnn, out)
    assert pred == "ello", f"predicted {pred!r}, probabilities {p}"
    assert losses[-1] < 0.05 < losses[0]


def test_sentiment_order_matters():
    acc_rnn, acc_bow = sentiment.main(n_train=800, n_test=400, epochs=6, log=None)
    assert acc_rnn > 0.95, acc_rnn
    assert acc_rnn > acc_bow + 0.25, (acc_rnn, acc_bow)


def test_char_lm_learns_and_samples():
    model, losses, _ = charlm.train(epochs=12, hidden=32, progress=False, log=None)
    assert losses[-1] < 0.8 * losses[0]
    s = model.sample(40, prime="Beautiful", seed=1)
    assert s.startswith("Beautiful") and len(s) == 49 and set(s) <= set(model.chars)


def test_gradnorm_shows_the_vanishing_rnn_gradient(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "g.png"
    table = gradnorm.main(path=str(path), T=100, log=None)
    assert path.stat().st_size > 1000
    assert table["rnn_tanh"][0] < 1e-10 * table["rnn_tanh"][-1]
    for cell in ("lstm", "gru"):
        assert table[cell][0] > 1e6 * table["rnn_tanh"][0]


def test_dh_norms_are_the_same_for_every_backend(backend, cell):
    case = make_case(cell, T=6, B=4, lengths="spread", seed=3)
    _, _, ctx = case.forward(backend)
    *grads, norms = F.backward(ctx, case.dy, case.dstate_n, dh_norms=True)
    _, _, ref_ctx = case.forward("numpy")
    *ref_grads, ref = F.backward(ref_ctx, case.dy, case.dstate_n, dh_norms=True)
    np.testing.assert_allclose(norms, ref, rtol=1e-9)
    assert norms.shape == (6, 4) and (norms[case.lengths[None, :] <= np.arange(6)[:, None]] == 0).all()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"), timeout=300)  # fmt: skip


@pytest.mark.parametrize("cmd", ["info", "precompile", "demo", "hello", "sentiment", "gradnorm"])
def test_cli_help(cmd):
    r = _cli(cmd, "--help")
    assert r.returncode == 0 and "usage: rnnkit" in r.stdout


def test_every_cli_option_has_help_text():
    import argparse

    from rnnkit.__main__ import parser

    subs = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subs.choices) == {"info", "precompile", "demo", "hello", "sentiment", "bench", "gradnorm"}
    for name, sub in subs.choices.items():
        for action in sub._actions:
            assert action.help, f"rnnkit {name} {action.option_strings}: no help text"


def test_cli_info_and_errors(tmp_path):
    r = _cli("info")
    assert r.returncode == 0 and "backends:" in r.stdout and "threads:" in r.stdout
    r = _cli("demo", "--text", str(tmp_path / "missing.txt"), "--epochs", "1")
    assert r.returncode == 1 and "cannot read text file" in r.stderr and "Traceback" not in r.stderr
    r = _cli("hello", "--steps", "zero")
    assert r.returncode == 2 and "expected an integer in [1, 1000000], got 'zero'" in r.stderr and "Traceback" not in r.stderr
    r = _cli("frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_cli_demo_on_a_user_text(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    r = _cli("demo", "--text", str(f), "--epochs", "2", "--hidden", "16", "--sample", "20")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "time per epoch on each backend" in r.stdout
