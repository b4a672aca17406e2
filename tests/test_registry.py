"""The registry: names, cards, errors, and third-party models via entry points."""

from __future__ import annotations

import sys
import types

import pytest
from torch import nn

import highlightzoo as hz
from highlightzoo.errors import ConfigError, HighlightZooError, ModelNotFoundError
from highlightzoo.models import registry
from highlightzoo.models.registry import ModelCard, register_model

EXPECTED = {
    "prnet", "prnet_residual", "prnet_ranking", "prnet_ce", "prnet_triplet", "prnet_g", "prnet_u",
    "prnet_mean_u", "prnet_mean_u_g", "prnet_h0", "prnet_h5", "fcsn", "avhd", "phdgifs", "video2gif",
}


def test_every_paper_model_is_registered_with_a_card():
    names = set(hz.list_models())
    assert EXPECTED <= names
    for name in EXPECTED:
        card = hz.get_model_card(name)
        assert card.name == name
        assert card.granularity in ("frame", "segment")
        assert card.table in ("table1", "table2")
        assert card.paper_map is not None and 10 < card.paper_map < 25


def test_list_models_filters_by_pattern():
    assert set(hz.list_models("prnet_mean*")) == {"prnet_mean_u", "prnet_mean_u_g"}
    assert hz.list_models("no_such_*") == []


def test_unknown_model_is_a_typed_error_listing_choices():
    with pytest.raises(ModelNotFoundError, match="prnet") as info:
        hz.create_model("prnte", feature_dim=8)
    assert isinstance(info.value, HighlightZooError)


def test_duplicate_name_is_refused():
    card = ModelCard("prnet", "dup", "x", "frame", True, "contrastive")
    with pytest.raises(ValueError, match="already registered"):
        register_model(card)(lambda feature_dim: nn.Identity())


def test_entry_point_plugins_are_loaded(monkeypatch):
    """A third-party package registers a model by naming a module in the entry-point group."""
    plugin = types.ModuleType("hz_plugin_demo")

    def load_plugin():
        @register_model(ModelCard("plugin_demo", "a plugin", "none", "frame", False, "ranking"))
        def plugin_demo(feature_dim: int) -> nn.Module:
            return nn.Linear(feature_dim, 1)

        return plugin

    class FakeEntryPoint:
        name, group = "demo", registry.ENTRY_POINT_GROUP

        def load(self):
            return load_plugin()

    monkeypatch.setitem(sys.modules, "hz_plugin_demo", plugin)
    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()])
    try:
        assert "plugin_demo" in hz.list_models()
        model = hz.create_model("plugin_demo", feature_dim=4)
        assert model.card.name == "plugin_demo" and model.build_args == {"feature_dim": 4}
    finally:
        registry._REGISTRY.pop("plugin_demo", None)


def test_a_plugin_that_fails_to_load_is_named_not_a_traceback_for_every_model(monkeypatch,
                                                                               caplog):
    """A third-party package whose module raised (a bad card, a missing dependency) ended every
    command, `list-models` included, in its traceback. The zoo goes on with the models it
    has, warns, and names the plugin where its model is asked for."""
    class BrokenEntryPoint:
        name, group, value = "broken", registry.ENTRY_POINT_GROUP, "hz_broken_plugin"

        def load(self):
            raise ImportError("No module named 'some_dependency'")

    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(registry, "PLUGIN_ERRORS", {})
    monkeypatch.setattr(registry, "entry_points", lambda group: [BrokenEntryPoint()])
    with caplog.at_level("WARNING", logger="highlightzoo.models.registry"):
        assert "prnet" in hz.list_models()
    assert "model plugin 'broken' failed to load" in caplog.text
    with pytest.raises(ModelNotFoundError, match="plugin 'broken' failed to load "
                       r"\(hz_broken_plugin: ImportError: No module named 'some_dependency'\)"):
        hz.create_model("broken_model", feature_dim=4)


def test_unknown_override_is_a_config_error_listing_the_options():
    from highlightzoo.errors import ConfigError

    with pytest.raises(ConfigError, match="no option 'nonexistent_kwarg'.*dropout"):
        hz.create_model("fcsn", feature_dim=8, nonexistent_kwarg=1)
    with pytest.raises(ConfigError, match="no option 'width'.*width_mult"):
        hz.create_model("video2gif", feature_dim=8, width=64)


@pytest.mark.parametrize("name", hz.list_models())
def test_every_registered_model_refuses_an_unknown_option_by_name(name):
    # PR-Net's builders pass **overrides on; they list them, so a typo is named with the
    # options (not PRNet.__init__'s TypeError), and the bench can check it before building
    from highlightzoo.errors import ConfigError
    from highlightzoo.models.registry import check_model_overrides

    with pytest.raises(ConfigError, match=f"model '{name}' has no option 'no_such_option'; its options"):
        check_model_overrides(name, {"no_such_option": 1})
    with pytest.raises(ConfigError, match="no option 'no_such_option'"):
        hz.create_model(name, feature_dim=8, no_such_option=1)


def test_prnet_options_are_listed_and_its_variant_switches_are_refused():
    from highlightzoo.errors import ConfigError
    from highlightzoo.models.prnet import prnet_u

    with pytest.raises(ConfigError, match="its options: width, depth, kernel_size, lam, chunk_size"):
        hz.create_model("prnet", feature_dim=8, dropout=0.1)
    for call in (lambda: hz.create_model("prnet_u", feature_dim=8, generic=True),
                 lambda: prnet_u(8, generic=True)):  # a builder called directly too
        with pytest.raises(ConfigError, match="'generic' cannot be overridden; pick the registered"):
            call()
    assert hz.create_model("prnet_u", feature_dim=8, width=4, lam=3.0).build_args == {
        "feature_dim": 8, "width": 4, "lam": 3.0}


def test_builders_with_var_keywords_take_any_override():
    @register_model(ModelCard("tmp_kwargs_model", "s", "p", "frame", False, "cross_entropy"))
    def tmp(feature_dim: int, **kw) -> nn.Module:
        return nn.Linear(feature_dim, 1)

    try:
        assert hz.create_model("tmp_kwargs_model", feature_dim=3, anything=1).build_args == {
            "feature_dim": 3, "anything": 1}
    finally:
        registry._REGISTRY.pop("tmp_kwargs_model")


def test_a_builders_torch_error_is_one_line_without_its_cpp_stack():
    """torch's messages can carry a C++ stack ("Exception raised from ... frame #0: ...");
    the ConfigError keeps the first line, so the command line prints one line."""
    @register_model(ModelCard("tmp_failing_model", "s", "p", "frame", False, "cross_entropy"))
    def tmp(feature_dim: int, size: int = 1) -> nn.Module:
        raise ValueError("Overflow when unpacking long long\nException raised from X\nframe #0")

    try:
        with pytest.raises(ConfigError) as info:
            hz.create_model("tmp_failing_model", feature_dim=3, size=2, allow_large=True)
        assert str(info.value).endswith(": Overflow when unpacking long long"), str(info.value)
    finally:
        registry._REGISTRY.pop("tmp_failing_model")


BUILD_EVERY_MODEL = """
import sys
import highlightzoo as hz
loaded_on_import = sorted(m for m in ("highlightzoo.training", "highlightzoo.data", "h5py")
                          if m in sys.modules)
for name in hz.list_models():
    hz.create_model(name, feature_dim=16)
compiler = sorted(m for m in ("torch._dynamo", "torch.fx.experimental.symbolic_shapes", "sympy")
                  if m in sys.modules)
print(loaded_on_import, compiler)
"""


def test_building_models_does_not_load_torchs_compiler_and_import_stays_lean():
    """``create_model`` counts parameters on the meta device first; torch's meta versions of
    some ops (``normal_``, ``cat``, an out-of-place division) import its compiler stack, about
    a second of the first build in a process. No registered model uses them at build time.
    ``import highlightzoo`` loads neither the trainer nor the data package (docs/performance.md).
    Run in a fresh interpreter: this one has imported everything already."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", BUILD_EVERY_MODEL], capture_output=True,
                          text=True, timeout=300, check=True)
    assert proc.stdout.strip() == "[] []", proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["video2gif", "phdgifs", "fcsn"])
def test_a_shared_parts_config_error_names_the_model(name):
    """A check inside a shared part (here the dropout probability) does not know which model
    it is building; ``create_model`` adds the name."""
    with pytest.raises(ConfigError, match=rf"^model '{name}'.*dropout probability"):
        hz.create_model(name, feature_dim=8, dropout=2.0)


@pytest.mark.parametrize("feature_dim", ["16", 16.0, 0, -3, True, None])
@pytest.mark.parametrize("name", ["prnet", "fcsn", "video2gif"])
def test_a_feature_dim_that_is_not_a_positive_int_is_a_config_error(name, feature_dim):
    """Not a string or a float failing deep inside a layer, nor (0) a model of empty
    weights: one error naming the model and what feature_dim must be."""
    with pytest.raises(ConfigError, match=rf"model '{name}': feature_dim .* must be an int >= 1"):
        hz.create_model(name, feature_dim=feature_dim)


def test_a_numpy_integer_feature_dim_is_recorded_as_an_int():
    import numpy as np

    model = hz.create_model("prnet", feature_dim=np.int64(16))
    assert type(model.build_args["feature_dim"]) is int  # JSON-able in a checkpoint


@pytest.mark.parametrize("field, value, match", [
    ("granularity", "pixel", "granularity must be 'frame' or 'segment'"),
    ("uses_history", "no", "uses_history must be true or false"),  # truthy: read as yes
    ("history_cap", -1, r"history_cap must be None \(all\) or an int >= 0"),
    ("paper_map", "16.7", r"paper_map must be None or a mAP in \[0, 100\]"),
    ("table", "table3", "table must be None, 'table1' or 'table2'"),
    ("name", "my/model", "name must be letters, digits"),  # run folders are named after it
    ("default_loss", None, "default_loss must be a text"),
])
def test_a_plugin_card_of_the_wrong_kind_is_refused_naming_it(field, value, match):
    card = dict(name="tmp_card", summary="s", paper="p", granularity="frame",
                uses_history=False, default_loss="ranking")
    with pytest.raises(ConfigError, match=f"model card .*{match}"):
        ModelCard(**{**card, field: value})
    assert ModelCard(**card, history_cap=0, paper_map=16, table="table2").history_cap == 0
