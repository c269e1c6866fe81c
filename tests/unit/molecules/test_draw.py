"""Molecule drawings: SVG/PNG output, atom colours from weights, grids, clear errors."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

pytest.importorskip("rdkit")

from medlearn.errors import DataValidationError  # noqa: E402
from medlearn.molecules._draw import (  # noqa: E402
    NEGATIVE_RGB,
    POSITIVE_RGB,
    atom_colors,
    draw_grid,
    draw_molecule,
    to_data_uri,
)

PHENOL = "Oc1ccccc1"  # 7 heavy atoms, O first


def _atom_fill(svg: str, atom: int) -> str | None:
    """The fill colour of atom ``atom``'s highlight ellipse in an RDKit SVG."""
    m = re.search(rf"<ellipse[^>]*class='atom-{atom}'[^>]*style='fill:(#[0-9A-Fa-f]{{6}})", svg)
    return m.group(1).upper() if m else None


def _close(fill: str | None, rgb) -> bool:
    """Whether an SVG ``#RRGGBB`` fill is ``rgb`` (floats in [0, 1]) up to RDKit's rounding."""
    if fill is None:
        return False
    got = [int(fill[k : k + 2], 16) for k in (1, 3, 5)]
    return all(abs(g - c * 255) <= 1.0 for g, c in zip(got, rgb, strict=True))


def _fills(svg: str) -> list[str]:
    return re.findall(r"fill:(#[0-9A-Fa-f]{6})", svg)


def test_svg_contains_every_atom() -> None:
    svg = draw_molecule(PHENOL)
    assert isinstance(svg, str) and svg.lstrip().startswith("<?xml") and "</svg>" in svg
    for i in range(7):
        assert f"atom-{i}" in svg
    assert "atom-7" not in svg


def test_weights_colour_atoms_by_sign_and_magnitude() -> None:
    weights = np.array([1.0, -1.0, 0.5, 0.0, 0.0, 0.0, -0.25])
    svg = draw_molecule(PHENOL, weights)
    assert _close(_atom_fill(svg, 0), POSITIVE_RGB)  # strongest positive: full red
    assert _close(_atom_fill(svg, 1), NEGATIVE_RGB)  # strongest negative: full blue
    half = _atom_fill(svg, 2)
    assert half is not None and not _close(half, POSITIVE_RGB)
    assert _close(half, [1 - 0.5 * (1 - c) for c in POSITIVE_RGB])  # half-strength red
    assert _atom_fill(svg, 3) is None  # zero weight: not highlighted
    flipped = draw_molecule(PHENOL, -weights)
    assert _close(_atom_fill(flipped, 0), NEGATIVE_RGB)
    assert flipped != svg


def test_atom_colors_scale() -> None:
    colors = atom_colors([2.0, -1.0, 0.0])
    assert colors[0] == pytest.approx(POSITIVE_RGB)
    r, g, b = colors[1]
    assert b > r and b > g and 0.5 < r < 1.0  # half-strength blue
    assert 2 not in colors
    fixed = atom_colors([0.5], scale=1.0)
    assert fixed[0] != pytest.approx(POSITIVE_RGB)  # half of the fixed scale
    assert atom_colors([0.0, 0.0]) == {}


def test_png_output_is_a_png() -> None:
    png = draw_molecule("CCO", [0.1, 0.2, 0.3], fmt="png", size=(120, 90))
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert to_data_uri(png).startswith("data:image/png;base64,")


def test_grid_draws_legends_and_highlights() -> None:
    svg = draw_grid(
        ["CCO", PHENOL, "c1ccncc1"],
        legends=["ethanol", "phenol", "pyridine"],
        atom_weights=[[1.0, 0.0, -1.0], None, np.ones(6)],
        per_row=2,
        sub_size=(200, 160),
    )
    assert "width='400px' height='320px'" in svg  # 2 columns x 2 rows of 200 x 160
    # RDKit draws legend text as glyph paths tagged class='legend' (none without legends)
    assert svg.count("class='legend'") >= len("ethanolphenolpyridine")
    assert "class='legend'" not in draw_grid(["CCO", PHENOL])
    fills = _fills(svg)
    assert any(_close(f, POSITIVE_RGB) for f in fills)
    assert any(_close(f, NEGATIVE_RGB) for f in fills)
    assert not any(_close(f, NEGATIVE_RGB) for f in _fills(draw_grid(["CCO"])))
    uri = to_data_uri(svg)
    assert base64.b64decode(uri.split(",", 1)[1]).decode("utf-8") == svg


def test_grid_blank_panel_for_invalid_smiles() -> None:
    svg = draw_grid(["CCO", "not a smiles"], legends=["ok", "invalid"], on_invalid="blank")
    assert "atom-0" in svg
    with pytest.raises(DataValidationError, match="molecule 1"):
        draw_grid(["CCO", "not a smiles"])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: draw_molecule("CCO", [1.0, 2.0]), "got 2 atom weights for a molecule with 3"),
        (lambda: draw_molecule("C1CC", None), "cannot be parsed"),
        (lambda: draw_molecule("", None), "cannot be parsed"),
        (lambda: draw_molecule("CCO", [1.0, np.nan, 0.0]), "NaN"),
        (lambda: draw_grid([]), "at least one SMILES"),
        (lambda: draw_grid(["CCO"], legends=["a", "b"]), "1 SMILES but 2 legends"),
        (lambda: draw_molecule("CCO", fmt="gif"), "'svg' or 'png'"),
    ],
)
def test_bad_calls_raise_clear_errors(call, match) -> None:
    with pytest.raises(DataValidationError, match=match):
        call()
