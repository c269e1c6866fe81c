"""``medlearn models show NAME``: a model's tasks and every ``model.params`` entry with its
default and meaning (the parameters medlearn sets itself are named, not listed)."""

from __future__ import annotations

import pytest

from medlearn.cli import main
from medlearn.cli.models import param_docs


def test_show_lists_params_defaults_and_meanings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "show", "fp_kernel_ridge"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the table may wrap lines
    assert "fp_kernel_ridge (molecules; tasks: regression)" in out
    for name in ("alphas", "gammas", "cv_folds", "max_train", "n_bits", "descriptors"):
        assert f"│ {name} " in out
    assert "10000" in out and "folds of the search." in out
    assert "Set by medlearn" not in out  # molecule models reserve nothing


def test_show_names_the_params_medlearn_sets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "show", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "│ width " in out and "│ in_channels " not in out
    assert "Set by medlearn from the data and run file: in_channels, num_classes" in " ".join(
        out.split()
    )


def test_show_refuses_an_unknown_model_with_close_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "show", "fp_kernel_rige"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "Unknown model 'fp_kernel_rige'" in err and "fp_kernel_ridge" in err


def test_param_docs_reads_google_style_args() -> None:
    def factory(*, a: int = 1, b: int = 2, c: int = 3, d: int = 4) -> None:
        """Build it.

        Args:
            a, b: shared text
                that continues here.
            c: alone.

        Returns:
            nothing: not a parameter.
        """

    docs = param_docs(factory)
    assert docs == {
        "a": "shared text that continues here.",
        "b": "shared text that continues here.",
        "c": "alone.",
    }
