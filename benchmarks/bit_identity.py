"""Is a code change numerically neutral? Run every model's tiny benchmark with two source trees.

Usage (each tree on ``PYTHONPATH`` in turn, then compare)::

    PYTHONPATH=OLD_TREE python benchmarks/bit_identity.py run OUT_OLD old.json
    PYTHONPATH=NEW_TREE python benchmarks/bit_identity.py run OUT_NEW new.json
    python benchmarks/bit_identity.py diff old.json new.json

``run`` trains every registered model (``phdgifs_full`` excepted: it is slow and shares
PHD-GIFs' network) for 6 steps on the ``tiny`` world with one torch thread and writes the
results without wall-clock fields and provenance. Two numerics switches that are not part of a
refactor are pinned where the tree has them: one video per evaluation forward
(``eval_batch_size=1``) and the non-fused Adam. ``diff`` prints, per model, whether its record
is bit-identical (fields a tree adds, such as a new config key, are listed, not counted).
This is a measurement, not a test: docs/architecture.md records its outcome.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from pathlib import Path


def _pin_numerics() -> None:
    from highlightzoo.training import config

    init = config.TrainConfig.__init__
    names = list(inspect.signature(init).parameters)[1:]
    if init.__kwdefaults__ and "eval_batch_size" in init.__kwdefaults__:
        init.__kwdefaults__["eval_batch_size"] = 1
    else:
        defaults = list(init.__defaults__)
        defaults[names.index("eval_batch_size") - (len(names) - len(defaults))] = 1
        init.__defaults__ = tuple(defaults)
    try:
        from highlightzoo.training import optim
    except ImportError:  # a tree before the fused Adam
        return
    optim.can_fuse = lambda params: False


def run(out: Path, dump: Path) -> None:
    import torch

    torch.set_num_threads(1)
    from highlightzoo import provenance

    provenance.git_state = lambda: {"commit": "x", "dirty": False}
    _pin_numerics()
    from highlightzoo.bench import get_preset, load_results, run_tables, strip_timing
    from highlightzoo.models.registry import list_models

    tiny = dataclasses.replace(get_preset("quick"), name="tiny-test", world="tiny", max_steps=6,
                               eval_every=2, batch_size=4, patience=None)
    models = [m for m in list_models() if m != "phdgifs_full"]
    folder = run_tables(tiny, out, seeds=1, models=models, cache_dir=out / "cache", quiet=True)
    results = strip_timing(load_results(folder))
    results.pop("provenance", None)
    for record in results["runs"]:
        record.pop("provenance", None)
    dump.write_text(json.dumps(results, sort_keys=True, indent=1))


def _without_new_keys(a: dict, b: dict) -> tuple[dict, dict, set[str]]:
    """Drop config keys only one side has (a field a tree added), returning them."""
    a, b = dict(a), dict(b)
    ca, cb = dict(a.get("config", {})), dict(b.get("config", {}))
    only = set(ca) ^ set(cb)
    for key in only:
        ca.pop(key, None)
        cb.pop(key, None)
    a["config"], b["config"] = ca, cb
    return a, b, only


def diff(old: Path, new: Path) -> int:
    a_runs = {r["id"]: r for r in json.loads(old.read_text())["runs"]}
    b_runs = {r["id"]: r for r in json.loads(new.read_text())["runs"]}
    differing = 0
    for key in sorted(set(a_runs) | set(b_runs)):
        if key not in a_runs or key not in b_runs:
            print(f"{key}: only in {'new' if key in b_runs else 'old'}")
            differing += 1
            continue
        a, b, only = _without_new_keys(a_runs[key], b_runs[key])
        same = a == b
        differing += not same
        extra = f" (config keys of one side only: {sorted(only)})" if only else ""
        maps = f"test mAP {a['test']['map']!r} vs {b['test']['map']!r}"
        print(f"{key}: {'bit-identical' if same else 'DIFFERS'}; {maps}{extra}")
    print(f"{differing} of {len(set(a_runs) | set(b_runs))} runs differ")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        run(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "diff":
        sys.exit(diff(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
