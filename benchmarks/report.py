"""Turn a saved benchmark run (pytest benchmarks --benchmark-json=FILE) into a table, and optionally
a plot: median per implementation, speed-up over torch (same run), GFLOP/s, and the machine's
sgemm GFLOP/s measured in the same run.

    python benchmarks/report.py FILE.json [--plot speedups.png] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict

ORDER = ("torch", "torch_nomkldnn", "torch_packed", "torch_padded", "cpp", "rnnkit_torch", "numba", "numpy")


def load(path):
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(dict)
    info = {}
    for b in data["benchmarks"]:
        ex = b.get("extra_info", {})
        impl = ex.get("impl") or b["params"].get("impl")
        groups[b["group"]][impl] = {"median": b["stats"]["median"], "gflops": ex.get("gflops")}
        info = {k: ex[k] for k in ("cpu", "threads", "sgemm_gflops", "isa") if k in ex} or info
    return groups, info, data.get("machine_info", {})


def _fmt_time(s):
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def table(groups, markdown=False, compact=False):
    impls = [i for i in ORDER if any(i in g for g in groups.values())]
    if compact:  # torch as shipped (packed for variable lengths) and rnnkit's compiled backends
        impls = [i for i in impls if i in ("torch", "torch_packed", "cpp", "numba")]
    ratio_of = ("cpp", "rnnkit_torch", "numba", "numpy")
    head = ["case"] + [f"{i}" for i in impls] + [f"{i}/torch" for i in impls if i in ratio_of]
    rows = []
    for name in sorted(groups, key=_group_key):
        g = groups[name]
        base = g.get("torch", g.get("torch_packed"))
        row = [name]
        for i in impls:
            if i in g:
                gf = g[i]["gflops"]
                row.append(_fmt_time(g[i]["median"]) + (f" ({gf:.0f} GF/s)" if gf else ""))
            else:
                row.append("-")
        for i in impls:
            if i in ratio_of:
                row.append(f"{base['median'] / g[i]['median']:.2f}x" if base and i in g else "-")
        rows.append(row)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(str(r[c])) for r in [head] + rows) for c in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in [head] + rows]
    return "\n".join(lines)


def _group_key(name):
    order = {"S": 0, "M": 1, "L": 2, "XL": 3}
    parts = name.split("-")
    return (parts[0] == "lengths", parts[-2] if len(parts) > 2 else "", parts[0], order.get(parts[-1], 9))


def plot(groups, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in sorted(groups, key=_group_key) if "cpp" in groups[n] and ("torch" in groups[n] or "torch_packed" in groups[n])]
    speed = [(groups[n].get("torch") or groups[n]["torch_packed"])["median"] / groups[n]["cpp"]["median"] for n in names]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(names) + 1.5))
    ax.barh(range(len(names)), speed, color=["tab:green" if s >= 1 else "tab:red" for s in speed])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("speed-up of rnnkit (cpp) over torch, same run (log scale)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--plot", metavar="PNG")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--compact", action="store_true", help="torch, cpp and numba columns only")
    args = ap.parse_args(argv)
    groups, info, machine = load(args.json)
    cpu = info.get("cpu") or machine.get("cpu", {}).get("brand_raw", "?")
    sg = info.get("sgemm_gflops")
    print(f"machine: {cpu}; threads: {info.get('threads')}; pointwise ISA: {info.get('isa')}; "
          f"sgemm ceiling (same run): {sg:.0f} GFLOP/s" if sg and not math.isnan(sg) else f"machine: {cpu}")
    print(table(groups, args.markdown, args.compact))
    if args.plot:
        plot(groups, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
