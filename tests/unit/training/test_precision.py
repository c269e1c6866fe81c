"""``medlearn.training.precision``: parsing a ``precision`` setting and bfloat16 autocast."""

from __future__ import annotations

import pytest
import torch

from medlearn.errors import ConfigError
from medlearn.training import precision as prec


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "32"), (32, "32"), ("32", "32"), ("bf16", "bf16"), ("BF16", "bf16")],
)
def test_explicit_precisions_are_kept(value, expected):
    assert prec.resolve_precision(value, field="x.precision") == expected


@pytest.mark.parametrize("value", ["16", "fp16", 64, True, "bfloat", ""])
def test_other_precisions_are_config_errors_naming_the_field(value):
    with pytest.raises(ConfigError, match="data.options.precision must be one of 32, bf16, auto"):
        prec.resolve_precision(value, field="data.options.precision")


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_hardware(monkeypatch, native):
    monkeypatch.setattr(prec, "native_bf16", lambda device="cpu": native)
    assert prec.resolve_precision("auto", field="p") == ("bf16" if native else "32")


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert prec.native_bf16("cpu") is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert prec.native_bf16("cpu") is True
    assert prec.native_bf16("meta") is False


def test_autocast_computes_in_bfloat16_only_for_bf16():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with prec.autocast("bf16"):
        assert lin(x).dtype == torch.bfloat16
    with prec.autocast("32"):
        assert lin(x).dtype == torch.float32
    assert lin.weight.dtype == torch.float32


def test_forward_in_returns_float32_computed_in_bfloat16():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 3)
    x = torch.randn(4, 8)
    ref = prec.forward_in("32", lin, x)
    out = prec.forward_in("bf16", lin, x)
    assert ref.dtype == out.dtype == torch.float32
    assert torch.equal(ref, lin(x))
    assert not torch.equal(out, ref) and torch.allclose(out, ref, atol=0.05)
