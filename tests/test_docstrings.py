"""The public API documents itself: every public name (each module's ``__all__``, the classes'
public methods) has a numpydoc docstring with a Parameters section when it takes arguments, and no
docstring points at a test file or a private module, which users do not have."""

import dataclasses
import importlib
import inspect
import re

import pytest

MODULES = ["rnnkit", "rnnkit.functional", "rnnkit.layers", "rnnkit.training", "rnnkit.onnx", "rnnkit.torch", "rnnkit.keras"]
PRIVATE = re.compile(r"tests/|test_\w+\.py|\b_(?:validate|cpp|core|numba|buffers|plan|backends|threads|native)\b")


def _public():
    for modname in MODULES:
        if modname == "rnnkit.torch":
            pytest.importorskip("torch")
        if modname == "rnnkit.onnx":
            pytest.importorskip("onnx")
        # rnnkit.keras needs no guard: it never imports keras (which, with no KERAS_BACKEND set,
        # would try TensorFlow and skip this whole test)
        mod = importlib.import_module(modname)
        yield modname, mod
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.ismodule(obj):
                continue
            yield f"{modname}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr not in ("__init__", "__call__"):
                        continue
                    if callable(member) or isinstance(member, property):
                        yield f"{modname}.{name}.{attr}", member


def _takes_arguments(obj):
    if inspect.isclass(obj):
        # a class documents the arguments of its own constructor; a dataclass's generated one (a
        # context users never build) or an inherited one is documented where it is defined
        if "__init__" not in vars(obj) or dataclasses.is_dataclass(obj):
            return False
    fn = obj.__init__ if inspect.isclass(obj) else obj
    if isinstance(fn, property) or not callable(fn):
        return False
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return any(p.name not in ("self", "cls") for p in sig.parameters.values())


def test_every_public_name_is_documented():
    missing, no_params = [], []
    for qual, obj in _public():
        if qual.endswith(".__init__"):
            continue  # documented in the class docstring (numpydoc's convention)
        doc = inspect.getdoc(obj)
        if inspect.isclass(obj) and obj.__doc__ is None:
            doc = None
        if not doc:
            missing.append(qual)
        elif _takes_arguments(obj) and "Parameters\n----------" not in doc and not inspect.ismodule(obj):
            no_params.append(qual)
    assert not missing, f"no docstring: {missing}"
    assert not no_params, f"takes arguments but its docstring has no Parameters section: {no_params}"


def test_no_docstring_names_a_test_file_or_a_private_module():
    bad = []
    for qual, obj in _public():
        doc = inspect.getdoc(obj) or ""
        m = PRIVATE.search(doc)
        if m:
            bad.append(f"{qual}: {m.group(0)!r}")
    assert not bad, bad
