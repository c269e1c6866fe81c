from __future__ import annotations

import pytest

from medlearn.errors import ConfigError, UnknownComponentError
from medlearn.registry import MODELS, Registry


@pytest.fixture()
def reg() -> Registry[object]:
    r: Registry[object] = Registry("widget", list_command="medlearn widgets list", plugins=())
    r.add("resnet18", object(), domain="imaging")
    r.add("resnet34", object(), domain="imaging")
    r.add("gru", object(), domain="clinical")
    return r


def test_get_and_meta(reg: Registry[object]) -> None:
    assert reg.meta("gru") == {"domain": "clinical"}
    assert reg.get("resnet18") is reg.entry("resnet18").obj


def test_unknown_name_suggests_close_matches(reg: Registry[object]) -> None:
    with pytest.raises(UnknownComponentError) as info:
        reg.get("resnet19")
    text = str(info.value)
    assert "Unknown widget 'resnet19'" in text
    assert "resnet18" in text and "medlearn widgets list" in text
    assert isinstance(info.value, KeyError)


def test_unknown_without_close_match_has_no_suggestion(reg: Registry[object]) -> None:
    with pytest.raises(UnknownComponentError) as info:
        reg.get("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_duplicate_registration_raises(reg: Registry[object]) -> None:
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("gru", object())


@pytest.mark.parametrize("bad", ["", " padded "])
def test_bad_names_refused(reg: Registry[object], bad: str) -> None:
    with pytest.raises(ConfigError):
        reg.add(bad, object())


def test_list_with_pattern_and_meta(reg: Registry[object]) -> None:
    assert reg.list() == ["gru", "resnet18", "resnet34"]
    assert reg.list("res*") == ["resnet18", "resnet34"]
    assert reg.list(domain="clinical") == ["gru"]
    assert "gru" in reg and len(reg) == 3


def test_decorator_returns_object_unchanged(reg: Registry[object]) -> None:
    @reg.register("fn", domain="x")
    def fn() -> int:
        return 1

    assert fn() == 1 and reg.get("fn") is fn
    reg.unregister("fn")
    assert "fn" not in reg


def test_builtin_plugins_populate_models_lazily() -> None:
    assert "resnet18" in MODELS.list(domain="imaging")
    assert MODELS.meta("resnet18")["domain"] == "imaging"


def test_lookups_import_plugins_only_until_the_name_is_found(tmp_path, monkeypatch) -> None:
    import sys

    for i, name in enumerate(("first", "second", "third")):
        (tmp_path / f"plug_{name}.py").write_text(
            "from tests_plugin_registry import REG\n"
            f"REG.add('{name}_widget', {i})\n"
            f"REG.add('{name}_gadget', {i * 10})\n"
        )
    (tmp_path / "tests_plugin_registry.py").write_text(
        "from medlearn.registry import Registry\n"
        "REG = Registry('widget', plugins=('plug_first', 'plug_second', 'plug_third'))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from tests_plugin_registry import REG  # type: ignore[import-not-found]

    assert REG.get("second_widget") == 1
    assert "plug_second" in sys.modules and "plug_third" not in sys.modules  # stopped there
    assert REG.get("first_gadget") == 0  # already there: nothing more imported
    assert "second_gadget" in REG and "plug_third" not in sys.modules
    # registered_now answers from what is imported, a miss included, and imports nothing
    assert REG.registered_now("second_widget") and not REG.registered_now("third_widget")
    assert "plug_third" not in sys.modules
    with pytest.raises(UnknownComponentError, match="third_widget"):  # did-you-mean: all
        REG.get("third_widgets")
    assert "plug_third" in sys.modules
    assert REG.list() == sorted(
        f"{a}_{b}" for a in ("first", "second", "third") for b in ("gadget", "widget")
    )
    for mod in ("plug_first", "plug_second", "plug_third", "tests_plugin_registry"):
        sys.modules.pop(mod, None)


def test_a_molecule_lookup_does_not_import_monai_or_lightning(fresh_python) -> None:
    code = (
        "import sys\n"
        "from medlearn.registry import MODELS, TASKS\n"
        "MODELS.get('dmpnn'); TASKS.get('molecules:regression')\n"
        "from medlearn.evaluation.report import _render_value\n"
        "_render_value({'val_rmse': {'fp_kernel_ridge': 1.0, 'network': 2.0}})\n"
        "print(sorted(m for m in ('monai', 'lightning', 'medlearn.imaging') if m in sys.modules))\n"
    )
    assert fresh_python(code) == "[]"
