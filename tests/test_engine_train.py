"""The trainer end to end on a tiny store: every model, exact resume, selection, run folders."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import pytest
import torch
from training_support import GONE, SMALL, set_at, write_tiny_store

import highlightzoo as hz
from highlightzoo.cli import main
from highlightzoo.errors import CheckpointError, ConfigError, RunFolderError
from highlightzoo.training import TrainConfig, train
from highlightzoo.training.evaluation import evaluate_checkpoint

RESULT_KEYS = {
    "map", "user_map", "map_ci95", "n_pairs", "n_skipped", "nmsd", "hit_at_5", "records",
    "skipped", "history", "best_step", "best_val_map", "steps_run", "stop_reason", "converged",
    "curve", "training_time_s", "provenance", "config", "model_card", "protocol",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_tiny_store(tmp_path_factory.mktemp("data") / "tiny.h5")


def _config(store: Path, model: str, out: Path, **kw) -> TrainConfig:
    # the steps protocol: its skip rule (no positive step) is what the assertions below count
    base = dict(epochs=1, batch_size=4, eval_batch_size=3, seed=0, protocol="steps")
    return TrainConfig(model=model, data=str(store), out=str(out),
                       model_overrides=SMALL.get(model, {}), **{**base, **kw})


@pytest.mark.parametrize("model", hz.list_models())
def test_every_model_trains_and_evaluate_reproduces_its_test_map(model, store, tmp_path, capsys):
    result = train(_config(store, model, tmp_path / "run"), quiet=True)
    run = result.run_dir
    results = json.loads((run / "results.json").read_text())
    assert results == json.loads(json.dumps(result.to_dict()))  # one definition of the file
    assert RESULT_KEYS <= set(results)
    assert results["model"] == model and results["model_card"]["name"] == model
    # every test pair is either scored or listed as skipped: nothing dropped
    assert results["n_pairs"] == len(results["records"]) == 4
    assert [s["user"] for s in results["skipped"]] == ["test-empty"]
    assert 0.0 <= results["map"] <= 100.0 and results["map_ci95"][0] <= results["map_ci95"][1]
    trainable = hz.get_model_card(model).trainable
    assert [h["epoch"] for h in results["history"]] == ([1.0] if trainable else [0.0])
    assert results["stop_reason"] == ("cap" if trainable else "untrained")
    assert results["provenance"]["seed"] == 0 and results["provenance"]["torch"] == torch.__version__
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert (run / "train.log").read_text().count("test mAP") == 1
    capsys.readouterr()

    assert main(["evaluate", str(run), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["map"] == results["map"]  # exactly, not approximately
    assert [r["ap"] for r in again["records"]] == [r["ap"] for r in results["records"]]


def test_interrupted_and_resumed_run_ends_with_identical_weights(store, tmp_path):
    cfg = _config(store, "video2gif", tmp_path / "straight", epochs=3, batch_size=3, seed=5)
    straight = train(cfg, quiet=True).run_dir
    broken = tmp_path / "broken"
    paused = train(cfg.replace(out=str(broken)), quiet=True, stop_after=2)
    assert paused.selection.stop_reason == "paused" and paused.test is None
    assert not (broken / "results.json").exists()  # as if killed after validation 2
    resumed = train(None, quiet=True, resume=broken).run_dir
    a = torch.load(straight / "checkpoints/last.pt", weights_only=True)
    b = torch.load(resumed / "checkpoints/last.pt", weights_only=True)
    assert a["model_state"].keys() == b["model_state"].keys()
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key
    ra, rb = (json.loads((r / "results.json").read_text()) for r in (straight, resumed))
    assert ra["map"] == rb["map"] and [h["val_map"] for h in ra["history"]] == [
        h["val_map"] for h in rb["history"]
    ]
    with pytest.raises(RunFolderError, match="already finished"):
        train(None, quiet=True, resume=resumed)


def test_a_run_resumed_where_the_kernels_have_another_layout_restrides_adams_state(
        store, tmp_path, monkeypatch):
    """Paused where FCSN's kernels were channels-last (a GPU; here the CPU stands in),
    resumed where they are contiguous: the saved Adam moments are given the parameters'
    layout (fused Adam would otherwise pair wrong elements, silently), and the run ends."""
    from highlightzoo.models.components import fcsn as fcsn_parts
    from highlightzoo.training import optim as optim_module

    cfg = _config(store, "fcsn", tmp_path / "r", max_steps=6, eval_every=2, batch_size=2)
    monkeypatch.setattr(fcsn_parts, "CHANNELS_LAST_ON", frozenset({"cpu"}))
    train(cfg, quiet=True, stop_after=1)
    monkeypatch.setattr(fcsn_parts, "CHANNELS_LAST_ON", frozenset())
    moved = []
    real = optim_module.match_state_layout
    monkeypatch.setattr(optim_module, "match_state_layout", lambda opt: moved.append(real(opt)))
    result = train(None, quiet=True, resume=tmp_path / "r")
    assert moved == [24]  # exp_avg and exp_avg_sq of the 12 block-conv kernels
    assert result.selection.steps_run == 6 and result.test is not None


def test_same_seed_same_result_and_other_seed_differs(store, tmp_path):
    runs = [train(_config(store, "phdgifs", tmp_path / f"r{i}", seed=s), quiet=True).run_dir
            for i, s in enumerate((1, 1, 2))]
    states = [torch.load(r / "checkpoints/last.pt", weights_only=True)["model_state"] for r in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_early_stopping_keeps_the_best_validation_step(store, tmp_path):
    # lr so small the weights cannot change in float32: validation mAP never improves
    result = train(_config(store, "video2gif", tmp_path / "r", max_steps=12, eval_every=2, patience=2,
                           batch_size=2, lr=1e-20), quiet=True)
    sel = result.selection
    assert [p["step"] for p in sel.curve] == [2, 4, 6] and sel.stop_reason == "patience"
    assert sel.best_step == 2 and sel.steps_run == 6 and sel.converged
    assert sel.best_val_map == sel.curve[0]["val_map"]


def test_min_steps_delays_the_stop_and_the_cap_is_not_convergence(store, tmp_path):
    late = train(_config(store, "video2gif", tmp_path / "a", max_steps=12, eval_every=2, patience=1,
                         min_steps=8, batch_size=2, lr=1e-20), quiet=True).selection
    assert [p["step"] for p in late.curve] == [2, 4, 6, 8] and late.stop_reason == "patience"
    capped = train(_config(store, "video2gif", tmp_path / "b", max_steps=5, eval_every=2,
                           batch_size=2, lr=1e-20), quiet=True).selection
    assert [p["step"] for p in capped.curve] == [2, 4, 5] and capped.stop_reason == "cap"
    assert not capped.converged
    assert "patience cannot stop" not in (tmp_path / "a" / "train.log").read_text()


def test_min_steps_above_the_cap_is_said_in_the_log(store, tmp_path):
    result = train(_config(store, "video2gif", tmp_path / "a", max_steps=4, eval_every=2,
                           patience=1, min_steps=5, batch_size=2, lr=1e-20), quiet=True)
    assert result.selection.stop_reason == "cap" and not result.selection.converged
    assert ("min_steps 5 is above the cap of 4 steps, so patience cannot stop this run"
            in (tmp_path / "a" / "train.log").read_text())


def test_a_run_without_test_split_never_reads_the_test_users(store, tmp_path, monkeypatch):
    from highlightzoo.data import dataset

    splits = []
    real = dataset.HighlightDataset.__init__

    def spy(self, store_or_path, split, **kw):
        splits.append(split)
        real(self, store_or_path, split, **kw)

    monkeypatch.setattr(dataset.HighlightDataset, "__init__", spy)
    result = train(_config(store, "video2gif", tmp_path / "r", test_split=None), quiet=True)
    assert result.test is None and "test" not in splits
    assert json.loads((result.run_dir / "results.json").read_text())["records"] == []


def test_run_folders_are_never_overwritten(store, tmp_path, capsys):
    run = train(_config(store, "video2gif", tmp_path / "r"), quiet=True).run_dir
    with pytest.raises(RunFolderError, match="already exists"):
        train(_config(store, "video2gif", run), quiet=True)
    auto = [train(_config(store, "video2gif", tmp_path).replace(out=None), quiet=True,
                  runs_root=tmp_path / "runs").run_dir for _ in range(2)]
    assert auto[0] != auto[1] and all((a / "results.json").exists() for a in auto)
    assert capsys.readouterr().out == ""  # quiet means quiet


def test_bf16_on_cpu_is_refused_before_any_work(store, tmp_path):
    with pytest.raises(ConfigError, match="bf16"):
        train(_config(store, "video2gif", tmp_path / "r", precision="bf16", device="cpu"))
    assert not (tmp_path / "r").exists()


def test_dataloader_workers_do_not_change_the_result(store, tmp_path):
    """Worker count changes neither the order nor the clips (both come from (seed, epoch))."""
    runs = [train(_config(store, "prnet", tmp_path / f"w{n}", epochs=2, batch_size=3, num_workers=n),
                  quiet=True).run_dir for n in (0, 2)]  # fmt: skip
    a, b = (torch.load(r / "checkpoints/last.pt", weights_only=True)["model_state"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_paused_call_never_tests_even_when_the_rule_fires_inside_it(store, tmp_path):
    cfg = _config(store, "video2gif", tmp_path / "r", max_steps=20, eval_every=2, patience=2,
                  batch_size=2, lr=1e-20)
    first = train(cfg, quiet=True, stop_after=5)  # the rule fires at the 3rd validation
    assert first.selection.stop_reason == "patience" and first.test is None
    assert not (tmp_path / "r" / "results.json").exists()
    done = train(None, quiet=True, resume=tmp_path / "r")
    assert done.test is not None and done.selection.steps_run == first.selection.steps_run == 6
    assert (tmp_path / "r" / "results.json").exists()


def test_a_convolutional_model_reruns_bit_for_bit_on_one_machine(store, tmp_path):
    """Same seed, same machine, same threads: identical weights, tensor by tensor (FCSN)."""
    runs = [train(_config(store, "fcsn", tmp_path / f"f{i}", max_steps=3, eval_every=3, batch_size=3),
                  quiet=True).run_dir for i in range(2)]  # fmt: skip
    a, b = (torch.load(r / "checkpoints/last.pt", weights_only=True)["model_state"] for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_benchmark_resumes_a_chosen_run_finished_but_not_recorded(store, tmp_path):
    """A crash between a run's end and its record: resume_run tests it again, same numbers."""
    from highlightzoo.bench.backend import TrainerBackend
    from highlightzoo.bench.presets import get_preset
    from highlightzoo.bench.protocol import World

    cfg = _config(store, "video2gif", tmp_path / "r", max_steps=6, eval_every=2, batch_size=2)
    train(cfg, quiet=True, stop_after=1)
    finished = train(None, quiet=True, resume=tmp_path / "r")  # writes results.json
    outcome = TrainerBackend().resume_run(get_preset("quick"), "video2gif", 0, World(store, "k", {}),
                                          tmp_path / "r", device="cpu", trace_pairs=[])
    assert outcome.record["test"]["map"] == finished.test.map


# ----------------------------------------------------------------- a damaged last.pt on resume


@pytest.fixture(scope="module")
def paused_run(store, tmp_path_factory) -> Path:
    """A video2gif run paused after its first validation: ``last.pt`` holds what a resume reads."""
    run = tmp_path_factory.mktemp("paused") / "run"
    train(_config(store, "video2gif", run, epochs=3, batch_size=3, eval_every=2), quiet=True, stop_after=1)
    return run


def _with_last(run: Path, to: Path, place: tuple, value) -> Path:
    """A copy of ``run`` whose ``last.pt`` has ``value`` at key path ``place`` (or not the key)."""
    import shutil

    shutil.copytree(run, to)
    payload = torch.load(to / "checkpoints/last.pt", weights_only=True)
    set_at(payload, place, value)
    torch.save(payload, to / "checkpoints/last.pt")
    return to


@pytest.mark.parametrize(
    "place, value, message",
    [
        (("optimizer_state",), GONE, "optimizer_state is missing"),
        (("optimizer_state", "param_groups"), [], "groups of [] parameters"),
        (("optimizer_state", "param_groups", 0, "lr"), 1.5, "param_groups[0] differs from the run's config: lr=1.5"),
        (("optimizer_state", "state", 0, "exp_avg"), GONE, "optimizer_state.state[0] holds ['exp_avg_sq', 'step']"),
        # a whole parameter's moments: told apart from a parameter without gradients by the
        # list of parameters with state that last.pt keeps
        (("optimizer_state", "state", 1), GONE, "(missing: [1])"),
        (("optimizer_stateful",), [0, 1], "it was saved with [0, 1]"),
        (("optimizer_state", "state", 0, "exp_avg"), torch.zeros(3, 2), "of shape (3, 2)"),
        (("optimizer_state", "state", 0, "step"), 1.5, "optimizer_state.state[0]['step'] must be Tensor"),
        (("optimizer_state", "state", 0, "step"), torch.tensor(4), "is a torch.int64 tensor"),
        (("optimizer_state", "state", 99), {}, "state[99] belongs to no parameter"),
        (("optimizer_state", "state"), {}, "after 2 steps its optimizer_state.state is empty"),
        (("trainer_state", "stop"), GONE, "trainer_state.stop is missing"),
        (("trainer_state", "step"), 1.5, "trainer_state.step must be int, got 1.5"),
        (("trainer_state", "batch_in_epoch"), -1, "batch_in_epoch must be an int >= 0"),
        (("trainer_state", "curve"), 1.5, "trainer_state.curve must be a list"),
        (("trainer_state", "curve", 0, "val_map"), {}, "trainer_state.curve[0].val_map must be"),
        (("trainer_state", "from_the_future"), 1, "trainer state of another version"),
        (("rng",), GONE, "rng is missing"),
        (("rng", 0, "python", 1), {}, "rng[0].python[1] must be a list"),
        (("rng", 0, "python", 1), [1, 2], "625 Mersenne Twister words"),
        (("rng", 0, "numpy", 0), "PCG64", "must be 'MT19937'"),
        (("rng", 0, "numpy", 3), 1.5, "rng[0].numpy[3] must be int"),
        (("rng", 0, "torch"), torch.zeros(3), "must be a uint8 vector"),
    ],
)
def test_a_damaged_last_checkpoint_is_refused_on_resume_never_a_traceback(
        paused_run, tmp_path, place, value, message):
    """Found by replacing one value of a paused run's ``last.pt`` at a time: each was a
    ``KeyError`` / ``TypeError`` / ``ValueError`` from torch, NumPy or the trainer, or (a
    deleted Adam moment, a changed learning rate, an int step count) a resume that went on
    with another optimisation than the run's, silently."""
    run = _with_last(paused_run, tmp_path / "run", place, value)
    with pytest.raises(CheckpointError, match="last.pt") as info:
        train(None, quiet=True, resume=run)
    assert message in str(info.value)


def test_a_resume_keeps_its_own_optimiser_implementation(paused_run, tmp_path):
    """torch's ``load_state_dict`` takes every key of the saved groups, so a run saved without
    CUDA graphs and resumed with them got a non-capturable Adam (capture then fails on a GPU).
    The update rule comes from the checkpoint; how it runs (fused, capturable) from this process."""
    from highlightzoo.training.optim import make_adam
    from highlightzoo.training.resume import load_resume_point

    config = TrainConfig.from_dict(json.loads((paused_run / "config.json").read_text()))
    payload = torch.load(paused_run / "checkpoints/last.pt", weights_only=True)
    assert payload["optimizer_state"]["param_groups"][0]["capturable"] is False
    model = hz.create_model("video2gif", **payload["build_args"])
    optimizer = make_adam(model.parameters(), lr=config.lr, capturable=True)
    load_resume_point(paused_run, model, optimizer, config, payload["build_args"]["feature_dim"], 1, 0)
    assert optimizer.param_groups[0]["capturable"] is True
    assert optimizer.param_groups[0]["lr"] == config.lr
    assert len(optimizer.state) == len(payload["optimizer_state"]["state"])


@pytest.mark.parametrize("place, value", [(("batch_size",), GONE), (("batch_size",), 4),
                                          (("data_fingerprint",), GONE), (("sampling",), "last_video")])
def test_a_config_json_edited_or_damaged_after_the_checkpoint_is_refused_on_resume(
        paused_run, tmp_path, place, value):
    """A deleted field took its default and an edited one its new value: a resume that went on
    as another run than the one saved (and, without the fingerprint, unpinned from its store)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(paused_run, run)
    config = json.loads((run / "config.json").read_text())
    set_at(config, place, value)
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"config.json says {place[0]}=.* but .*last.pt' was trained with"):
        train(None, quiet=True, resume=run)


def _with_features(src: Path, dst: Path, info: dict) -> Path:
    """A copy of store ``src`` that says its features were made as ``info`` (not fingerprinted)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["features"] = json.dumps(info)
    return dst


def test_a_store_of_other_features_is_refused_by_evaluate_and_resume(store, tmp_path):
    """A store whose features came from another backbone fits a model of the same width and was
    scored (``evaluate --data``) or trained on (``--resume --data``) without a word."""
    ours = {"backbone": "resnet18", "feature_dim": 16, "rate": 1.875}
    theirs = {**ours, "backbone": "r3d_18"}
    mine = _with_features(store, tmp_path / "mine.h5", ours)
    other = _with_features(store, tmp_path / "other.h5", theirs)
    run = tmp_path / "run"
    train(_config(mine, "video2gif", run, epochs=3, batch_size=3, eval_every=2), quiet=True,
          stop_after=1)
    message = "refused: the model was trained on resnet18 (16-d, 1.875 steps/s) features, these are r3d_18"
    with pytest.raises(CheckpointError, match=re.escape(message)):
        evaluate_checkpoint(str(run / "checkpoints" / "last.pt"), data=str(other))
    with pytest.raises(CheckpointError, match=re.escape(message)):
        train(None, quiet=True, resume=run, overrides={"data": str(other)})
    assert evaluate_checkpoint(str(run / "checkpoints" / "last.pt"), data=str(mine)).map >= 0
