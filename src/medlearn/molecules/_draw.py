"""Drawings of molecules for reports: atoms coloured by attribution, and grids with legends.

RDKit's ``rdMolDraw2D`` draws without a display (SVG text, or PNG through its Cairo backend),
so reports build on headless machines. Per-atom weights (e.g. :attr:`Explanation.atoms
<medlearn.training.Explanation>`) colour each atom's highlight disc: red for positive weights,
blue for negative ones, the colour's strength proportional to ``|w| / scale`` (``scale``
defaults to the largest ``|w|`` of the molecule, so every drawing uses the full range).

Example::

    from medlearn.molecules._draw import draw_molecule, to_data_uri
    svg = draw_molecule("CCO", [0.1, -0.4, 0.9], legend="logS 0.21")
    html = f'<img src="{to_data_uri(svg)}">'
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from medlearn.errors import DataValidationError

__all__ = [
    "NEGATIVE_RGB",
    "POSITIVE_RGB",
    "atom_colors",
    "draw_grid",
    "draw_molecule",
    "to_data_uri",
]

#: Full-strength highlight of a positive weight (red) and of a negative one (blue).
POSITIVE_RGB: tuple[float, float, float] = (0.84, 0.15, 0.16)
NEGATIVE_RGB: tuple[float, float, float] = (0.15, 0.39, 0.92)
#: Weights with ``|w| / scale`` below this are left unhighlighted.
_MIN_SHOWN = 0.02

Format = Literal["svg", "png"]


def _as_mol(smiles: str, where: str) -> Any:
    from rdkit import Chem, rdBase

    mol = None
    if isinstance(smiles, str) and smiles.strip():
        with rdBase.BlockLogs():  # RDKit would echo the SMILES to stderr
            mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise DataValidationError(
            f"{where}: the SMILES cannot be parsed by RDKit, so it cannot be drawn.",
            hint="Pass a valid SMILES (e.g. the record's canonical 'input').",
        )
    return mol


def _check_weights(weights: Any, n_atoms: int, where: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_atoms:
        raise DataValidationError(
            f"{where}: got {w.shape[0]} atom weights for a molecule with {n_atoms} heavy atoms.",
            hint="Atom weights must follow the atom order of the SMILES that is drawn.",
        )
    if not np.all(np.isfinite(w)):
        raise DataValidationError(f"{where}: the atom weights contain NaN or infinite values.")
    return w


def atom_colors(
    weights: Any, *, scale: float | None = None
) -> dict[int, tuple[float, float, float]]:
    """Highlight colour of each atom: white → red for positive, white → blue for negative.

    Args:
        weights: per-atom weights ``(n_atoms,)``.
        scale: the ``|w|`` drawn at full strength (default: the largest ``|w|``).

    Returns:
        ``{atom index: (r, g, b)}`` in ``[0, 1]`` for atoms with a visible weight (atoms whose
        ``|w| / scale`` is below 2% are left out).
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    top = float(np.max(np.abs(w))) if w.size else 0.0
    s = float(scale) if scale is not None else top
    if s <= 0 or not np.isfinite(s):
        return {}
    colors: dict[int, tuple[float, float, float]] = {}
    for i, value in enumerate(w):
        strength = min(1.0, abs(float(value)) / s)
        if strength < _MIN_SHOWN:
            continue
        full = POSITIVE_RGB if value > 0 else NEGATIVE_RGB
        colors[i] = tuple(1.0 - strength * (1.0 - c) for c in full)  # type: ignore[assignment]
    return colors


def _drawer(fmt: Format, width: int, height: int, panel: tuple[int, int] | None = None) -> Any:
    from rdkit.Chem.Draw import rdMolDraw2D

    if fmt not in ("svg", "png"):
        raise DataValidationError(f"fmt must be 'svg' or 'png'. Got {fmt!r}.")
    cls = rdMolDraw2D.MolDraw2DSVG if fmt == "svg" else rdMolDraw2D.MolDraw2DCairo
    drawer = cls(width, height) if panel is None else cls(width, height, *panel)
    opts = drawer.drawOptions()
    opts.clearBackground = True
    opts.legendFontSize = 14
    opts.fixedBondLength = 28
    return drawer


def _finish(drawer: Any, fmt: Format) -> str | bytes:
    drawer.FinishDrawing()
    text = drawer.GetDrawingText()
    if fmt == "svg":
        return text if isinstance(text, str) else text.decode("utf-8")
    return text if isinstance(text, bytes) else bytes(text)


def draw_molecule(
    smiles: str,
    atom_weights: Any | None = None,
    *,
    legend: str = "",
    size: tuple[int, int] = (320, 240),
    scale: float | None = None,
    fmt: Format = "svg",
) -> str | bytes:
    """Draw one molecule, atoms highlighted by ``atom_weights``.

    Args:
        smiles: the molecule; weights follow its atom order.
        atom_weights: per-atom weights ``(n_atoms,)`` or ``None`` for a plain drawing.
        legend: text under the molecule.
        size: ``(width, height)`` in pixels.
        scale: the ``|w|`` drawn at full strength (default: the molecule's largest ``|w|``).
        fmt: ``"svg"`` (returns the SVG text) or ``"png"`` (returns PNG bytes).

    Returns:
        The SVG document as ``str``, or PNG bytes.

    Raises:
        DataValidationError: for an unparseable SMILES or weights of the wrong length.
    """
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = _as_mol(smiles, "draw_molecule")
    colors: dict[int, tuple[float, float, float]] = {}
    if atom_weights is not None:
        w = _check_weights(atom_weights, mol.GetNumAtoms(), "draw_molecule")
        colors = atom_colors(w, scale=scale)
    drawer = _drawer(fmt, int(size[0]), int(size[1]))
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer,
        mol,
        legend=legend,
        highlightAtoms=list(colors),
        highlightAtomColors=colors,
        highlightBonds=[],
    )
    return _finish(drawer, fmt)


def draw_grid(
    smiles: Sequence[str],
    *,
    legends: Sequence[str] | None = None,
    atom_weights: Sequence[Any | None] | None = None,
    per_row: int = 3,
    sub_size: tuple[int, int] = (260, 200),
    scale: float | None = None,
    fmt: Format = "svg",
    on_invalid: Literal["raise", "blank"] = "raise",
) -> str | bytes:
    """Draw molecules in a grid, each with a legend and optional atom highlights.

    Args:
        smiles: the molecules, drawn row by row.
        legends: one text per molecule (default: none).
        atom_weights: one ``(n_atoms,)`` array (or ``None``) per molecule.
        per_row: molecules per row.
        sub_size: ``(width, height)`` of one panel in pixels.
        scale: the ``|w|`` drawn at full strength in every panel (default: per molecule).
        fmt: ``"svg"`` or ``"png"``.
        on_invalid: ``"raise"`` for an unparseable SMILES, or ``"blank"`` to leave its panel
            empty (its legend still shown), e.g. for generated samples.

    Returns:
        The SVG document as ``str``, or PNG bytes.

    Raises:
        DataValidationError: for an empty list, mismatched lengths, an unparseable SMILES
            (with ``on_invalid="raise"``) or weights of the wrong length; the message names
            the molecule's position (0-based).
    """
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    n = len(smiles)
    if n == 0:
        raise DataValidationError("draw_grid needs at least one SMILES. Got an empty list.")
    if per_row < 1:
        raise DataValidationError(f"The 'per_row' parameter must be >= 1. Got {per_row}.")
    legends = [""] * n if legends is None else [str(x) for x in legends]
    weights = [None] * n if atom_weights is None else list(atom_weights)
    for name, seq in (("legends", legends), ("atom_weights", weights)):
        if len(seq) != n:
            raise DataValidationError(
                f"draw_grid got {n} SMILES but {len(seq)} {name}; give one per molecule."
            )
    mols, hl_atoms, hl_colors = [], [], []
    for i, (smi, w) in enumerate(zip(smiles, weights, strict=True)):
        where = f"draw_grid: molecule {i}"
        try:
            mol = _as_mol(smi, where)
        except DataValidationError:
            if on_invalid == "raise":
                raise
            mol = Chem.Mol()
        colors: dict[int, tuple[float, float, float]] = {}
        if w is not None and mol.GetNumAtoms():
            colors = atom_colors(_check_weights(w, mol.GetNumAtoms(), where), scale=scale)
        mols.append(rdMolDraw2D.PrepareMolForDrawing(mol) if mol.GetNumAtoms() else mol)
        hl_atoms.append(list(colors))
        hl_colors.append(colors)
    cols = min(per_row, n)
    rows = (n + cols - 1) // cols
    width, height = int(sub_size[0]), int(sub_size[1])
    drawer = _drawer(fmt, cols * width, rows * height, (width, height))
    drawer.DrawMolecules(
        mols,
        legends=legends,
        highlightAtoms=hl_atoms,
        highlightAtomColors=hl_colors,
        highlightBonds=[[] for _ in mols],
    )
    return _finish(drawer, fmt)


def to_data_uri(drawing: str | bytes) -> str:
    """A ``data:`` URI for an ``<img src>``: SVG text or PNG bytes, base64-encoded."""
    if isinstance(drawing, str):
        payload = base64.b64encode(drawing.encode("utf-8")).decode("ascii")
        return "data:image/svg+xml;base64," + payload
    return "data:image/png;base64," + base64.b64encode(drawing).decode("ascii")
