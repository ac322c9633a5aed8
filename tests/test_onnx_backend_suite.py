"""ONNX's own backend test cases for the RNN, LSTM and GRU operators (onnx.backend.test's node
cases, generated in memory by the installed onnx), run through rnnkit.onnx.Backend with the
cases' own tolerances. The cell forms rnnkit does not run yet are listed, and must fail with a
NotImplementedError naming what is missing; every other case must pass."""

import warnings

import numpy as np
import pytest

pytest.importorskip("onnx")
from rnnkit import onnx as ro  # noqa: E402

# The forms rnnkit does not implement yet, and the attribute the error must name.
UNSUPPORTED: dict = {}


def _cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators of unrelated operators' cases warn
        import onnx.backend.test.case.node as node_cases

        cases = node_cases.collect_testcases(None)
    prefixes = ("test_rnn_", "test_simple_rnn_", "test_lstm_", "test_gru_")
    return sorted((c for c in cases if c.name.startswith(prefixes)), key=lambda c: c.name)


CASES = _cases()


def test_the_suite_has_the_recurrent_cases():
    names = [c.name for c in CASES]
    assert len(names) >= 18, names  # onnx 1.15+: 6 GRU, 6 LSTM, 6 RNN cases
    assert set(UNSUPPORTED) <= set(names)
    assert "test_lstm_with_peepholes" in names and "test_gru_defaults" in names


@pytest.mark.filterwarnings("ignore:cell '.*' is implemented by the NumPy reference")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_onnx_backend_case(case):
    if case.name in UNSUPPORTED:
        with pytest.raises(NotImplementedError, match=UNSUPPORTED[case.name]):
            for inputs, _ in case.data_sets:
                ro.Backend.run_model(case.model, inputs)
        return
    for inputs, outputs in case.data_sets:
        got = ro.Backend.run_model(case.model, inputs)
        assert len(got) >= len(outputs)
        for i, (g, w) in enumerate(zip(got, outputs)):
            assert g.shape == w.shape and g.dtype == w.dtype, (i, g.shape, w.shape, g.dtype, w.dtype)
            np.testing.assert_allclose(g, w, rtol=case.rtol, atol=case.atol, err_msg=f"output {i}")
