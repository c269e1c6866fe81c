"""The molecules reader, SMILES parsing, predict inputs and the graph cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medlearn.config import RunConfig
from medlearn.errors import ConfigError, DataValidationError
from medlearn.molecules import _data, _featurize
from medlearn.molecules._data import (
    featurize,
    parse_smiles,
    read_molecules,
    read_smiles_inputs,
)
from medlearn.registry import READERS


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MEDLEARN_CACHE_DIR", str(cache))
    _data.clear_memory_cache()
    _data._PARSED.clear()
    return cache


def _csv(tmp_path: Path, text: str, name: str = "mols.csv") -> Path:
    path = tmp_path / name
    path.write_text(text.strip() + "\n")
    return path


def _cfg(path: Path, target: str | list[str] = "y", task: str = "regression", **options):
    return RunConfig.model_validate(
        {
            "task": task,
            "data": {"path": str(path), "target": target, "options": options},
            "model": {"name": "any"},
        }
    )


# --- parse_smiles -----------------------------------------------------------------------------

VALID = [
    ("CCO", "CCO"),
    ("  OCC  ", "CCO"),
    ("CC(=O)[O-].[Na+]", "CC(=O)O"),  # salt stripped, charge neutralised
    ("C[NH3+]", "CN"),
    ("c1ccccc1", "c1ccccc1"),
    ("F/C=C/F", "F/C=C/F"),
]
INVALID = [
    ("", "empty SMILES"),
    (None, "empty SMILES"),
    (float("nan"), "empty SMILES"),
    ("C1CC", "unparseable SMILES (syntax error)"),
    ("C(C)(C)(C)(C)C", "invalid valence on atom 1 (C)"),
    ("c1cccc1", "aromatic ring cannot be kekulized"),
    ("[U]", "element(s) U outside the featuriser's element set (H to Rn)"),
    ("*CC", "element(s) * outside the featuriser's element set (H to Rn)"),
]


@pytest.mark.parametrize(("text", "canonical"), VALID)
def test_parse_smiles_valid(text: str, canonical: str) -> None:
    parsed = parse_smiles(text)
    assert parsed.problem is None
    assert parsed.canonical == canonical
    assert parsed.mol is not None


@pytest.mark.parametrize(("text", "problem"), INVALID)
def test_parse_smiles_invalid(text: object, problem: str) -> None:
    parsed = parse_smiles(text)
    assert parsed.mol is None and parsed.canonical == ""
    assert parsed.problem == problem


def test_parse_smiles_fragment_policies() -> None:
    assert parse_smiles("CCO.Cl", fragments="keep").canonical == "CCO.Cl"
    assert parse_smiles("CCO.Cl", fragments="error").problem.startswith("2 disconnected")
    assert parse_smiles("C[NH3+]", standardize=False).canonical == "C[NH3+]"


# --- the reader -------------------------------------------------------------------------------


def test_reader_is_registered_for_run_files_and_lists() -> None:
    meta = READERS.meta("molecules")
    assert meta["run_config"] is True and meta["multi_target"] is True
    assert READERS.get("molecules") is read_molecules


def test_records_follow_the_shared_format(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,y\nCCO,1.5\nc1ccccc1O,-0.5\nOCC,2.0\n")
    data = read_molecules(path, _cfg(path))
    assert [r["id"] for r in data.records] == ["row1", "row2", "row3"]
    first = data.records[0]
    assert first["input"] == "CCO" and first["target"] == 1.5
    assert isinstance(first["target"], float)
    assert first["patient_id"] == _data.molecule_id("CCO") and len(first["patient_id"]) == 16
    # the same molecule written twice shares its patient id (kept on one side of splits)
    assert data.records[2]["patient_id"] == first["patient_id"]
    assert first["meta"] == {"scaffold": "", "n_heavy_atoms": 3}
    assert data.records[1]["meta"]["scaffold"] == "c1ccccc1"
    assert data.info["targets"] == ["y"] and data.info["task_types"] == ["regression"]
    assert data.info["data_quality"]["duplicate_molecules"] == {"repeats_kept_on_one_side": 1}
    assert data.classes is None


def test_binary_target_gets_classes_and_int_labels(tmp_path: Path) -> None:
    path = _csv(tmp_path, "SMILES,active\nCCO,1\nCCN,0\nCCC,0\n")
    data = read_molecules(path, _cfg(path, "active", "binary"))
    assert data.classes == ["negative", "positive"]
    assert [r["target"] for r in data.records] == [1, 0, 0]
    assert all(isinstance(r["target"], int) for r in data.records)
    assert data.info["task_types"] == ["classification"]


def test_bad_rows_are_listed_with_row_numbers(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "smiles,y\nCCO,1\n,2\nC1CC,3\nCCN,abc\n[U],4\nCCC,5\nC(C)(C)(C)(C)C,6\n",
    )
    with pytest.raises(DataValidationError) as err:
        read_molecules(path, _cfg(path))
    msg = str(err.value)
    assert "5 of 7 rows" in msg
    assert "empty SMILES: row 2" in msg
    assert "unparseable SMILES (syntax error): row 3" in msg
    assert "target 'y' is not a finite number: row 4" in msg
    assert "element(s) U outside" in msg and "row 5" in msg
    assert "invalid valence on atom 1 (C): row 7" in msg
    assert "on_error: skip" in msg  # the hint


def test_skipped_rows_are_counted_and_listed(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,y\nCCO,1\n,2\nC1CC,3\nCCN,abc\n[U],4\nCCC,5\n")
    data = read_molecules(path, _cfg(path, on_error="skip"))
    assert [r["id"] for r in data.records] == ["row1", "row6"]
    assert data.info["data_quality"]["skipped"] == {
        "empty_smiles": 1,
        "unparseable_smiles": 1,
        "non_numeric_target": 1,
        "unsupported_element": 1,
    }
    assert [s["row"] for s in data.info["skipped_rows"]] == [2, 3, 4, 5]
    assert data.info["rows"] == 6 and data.info["molecules"] == 2


def test_salts_are_stripped_and_counted(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,y\nCC(=O)[O-].[Na+],1\nCCO.Cl,2\nCCC,3\n")
    data = read_molecules(path, _cfg(path))
    assert [r["input"] for r in data.records] == ["CC(=O)O", "CCO", "CCC"]
    quality = data.info["data_quality"]["standardised"]
    assert quality == {"fragments_removed": 2, "charges_neutralised": 1}


def test_multi_fragment_inputs_refused_with_fragments_error(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,y\nCCO,1\nCCO.Cl,2\n")
    with pytest.raises(DataValidationError, match=r"2 disconnected fragments.*row 2"):
        read_molecules(path, _cfg(path, fragments="error"))


def test_multi_target_missing_labels(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,a,b\nCCO,1,\nCCN,,0\nCCC,,\nc1ccccc1,0,1\n")
    data = read_molecules(path, _cfg(path, ["a", "b"], "binary"))
    targets = {r["id"]: r["target"] for r in data.records}
    assert set(targets) == {"row1", "row2", "row4"}  # row 3 has no label at all
    assert targets["row1"][0] == 1.0 and math.isnan(targets["row1"][1])
    assert math.isnan(targets["row2"][0]) and targets["row2"][1] == 0.0
    assert targets["row4"] == [0.0, 1.0]
    assert data.classes is None
    assert data.info["task_types"] == ["classification", "classification"]
    assert data.info["data_quality"]["labels"] == {"rows_without_label": 1, "missing_labels": 2}


def test_task_must_agree_with_targets(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,y\nCCO,1.5\nCCN,0\n")
    with pytest.raises(ConfigError, match=r"task is 'binary'.*'y'.*other than 0 and 1"):
        read_molecules(path, _cfg(path, "y", "binary"))
    with pytest.raises(ConfigError, match="not available for molecules"):
        read_molecules(path, _cfg(path, "y", "survival"))


def test_generation_needs_no_target_and_merges_duplicates(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles\nCCO\nOCC\nCCN\n")
    data = read_molecules(path, _cfg(path, "label", "generation"))
    assert [r["input"] for r in data.records] == ["CCO", "CCN"]
    assert all(r["target"] is None for r in data.records)
    assert data.info["targets"] == []
    assert data.info["data_quality"]["duplicate_molecules"] == {"repeats_merged": 1}


def test_descriptor_targets_are_the_rdkit_descriptors(tmp_path: Path) -> None:
    from rdkit.Chem import Descriptors, MolFromSmiles

    rows = ["CCO", "OCC", "c1ccccc1O", "CCCCCCN", "CC(=O)Oc1ccccc1C(=O)O", "C1CCCCC1"]
    path = _csv(tmp_path, "smiles,y\n" + "\n".join(f"{s},{i}" for i, s in enumerate(rows)))
    data = read_molecules(path, _cfg(path, "y", descriptor_targets=True))
    # the table's target is ignored and the repeated ethanol merged
    assert [r["input"] for r in data.records] == [
        "CCO",
        "Oc1ccccc1",
        "CCCCCCN",
        "CC(=O)Oc1ccccc1C(=O)O",
        "C1CCCCC1",
    ]
    names = data.info["targets"]
    assert data.info["task_types"] == ["regression"] * len(names)
    assert all(n.startswith("rdkit:") for n in names) and len(names) > 50
    # constant descriptors (e.g. no fluorine anywhere) are left out
    assert "rdkit:fr_halogen" not in names
    # each value is RDKit's own, clipped at the 0.5th/99.5th percentiles (with five molecules
    # only the lightest and the heaviest move, by 2% of the gap to their neighbour), then
    # standardised over the five
    j = names.index("rdkit:MolWt")
    raw = np.array([Descriptors.MolWt(MolFromSmiles(r["input"])) for r in data.records])
    lo, hi = np.sort(raw)[:2], np.sort(raw)[-2:]
    clipped = np.clip(raw, lo[0] + 0.02 * (lo[1] - lo[0]), hi[1] - 0.02 * (hi[1] - hi[0]))
    expected = (clipped - clipped.mean()) / clipped.std()
    assert [r["target"][j] for r in data.records] == pytest.approx(expected.tolist())
    Y = np.array([r["target"] for r in data.records])
    assert np.allclose(np.nanmean(Y, axis=0), 0) and np.allclose(np.nanstd(Y, axis=0), 1)
    assert data.info["data_quality"]["duplicate_molecules"] == {"repeats_merged": 1}
    # the rows are read-only views of one array (not a list of floats per molecule)
    bases = {id(r["target"].base) for r in data.records}
    assert len(bases) == 1 and all(r["target"].base is not None for r in data.records)
    with pytest.raises(ValueError, match="read-only"):
        data.records[0]["target"][0] = 1.0


def test_descriptor_targets_need_a_regression_task(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles\nCCO\nCCN\n")
    with pytest.raises(ConfigError, match="descriptor_targets.*task is 'binary'"):
        read_molecules(path, _cfg(path, "label", "binary", descriptor_targets=True))
    with pytest.raises(ConfigError, match="descriptor_targets must be true or false"):
        read_molecules(path, _cfg(path, "label", descriptor_targets="yes"))


def test_default_label_falls_back_to_catalog_target(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,p_np\nCCO,1\nCCN,0\n")
    data = read_molecules(path, _cfg(path, "label", "binary"), target="p_np")
    assert data.info["targets"] == ["p_np"]
    with pytest.raises(ConfigError, match=r"'label' \(the default\).*p_np"):
        read_molecules(path, _cfg(path, "label", "binary"))


def test_unknown_target_and_options_are_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,solubility\nCCO,1\n")
    with pytest.raises(ConfigError, match="did you mean 'solubility'"):
        read_molecules(path, _cfg(path, "solubilty"))
    with pytest.raises(ConfigError, match="Unknown data.options for molecules: colour"):
        read_molecules(path, _cfg(path, "solubility", colour="red"))
    with pytest.raises(ConfigError, match="fragments must be"):
        read_molecules(path, _cfg(path, "solubility", fragments="smallest"))


@pytest.mark.parametrize(
    ("header", "expected"),
    [("SMILES,y", "SMILES"), ("canonical_smiles,y", "canonical_smiles"), ("mol,y", "mol")],
)
def test_smiles_column_found_by_name(tmp_path: Path, header: str, expected: str) -> None:
    path = _csv(tmp_path, f"{header}\nCCO,1\nCCN,2\n")
    assert read_molecules(path, _cfg(path)).info["smiles_column"] == expected


def test_smiles_column_found_by_content_or_option(tmp_path: Path) -> None:
    path = _csv(tmp_path, "name,structure_text,y\nethanol,CCO,1\nethylamine,CCN,2\nx,c1ccccc1,3\n")
    assert read_molecules(path, _cfg(path)).info["smiles_column"] == "structure_text"
    data = read_molecules(path, _cfg(path, smiles_column="structure_text"))
    assert data.records[2]["input"] == "c1ccccc1"
    nothing = _csv(tmp_path, "name,y\nethanol,1\nwater,2\n", "none.csv")
    with pytest.raises(DataValidationError, match="no SMILES column found"):
        read_molecules(nothing, _cfg(nothing))


def test_parquet_and_smi_files(tmp_path: Path) -> None:
    import pandas as pd

    pq = tmp_path / "mols.parquet"
    pd.DataFrame({"smiles": ["CCO", "CCN"], "y": [1.0, np.nan]}).to_parquet(pq)
    data = read_molecules(pq, _cfg(pq))
    assert [r["target"] for r in data.records] == [1.0]
    assert data.info["data_quality"]["labels"] == {"rows_without_label": 1}
    smi = tmp_path / "mols.smi"
    smi.write_text("CCO ethanol\nc1ccccc1 benzene\n")
    gen = read_molecules(smi, _cfg(smi, "label", "generation"))
    assert [r["input"] for r in gen.records] == ["CCO", "c1ccccc1"]


def test_parse_results_are_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_data, "_PARSE_CACHE_MIN_ROWS", 2)
    path = _csv(tmp_path, "smiles,y\nCCO,1\nCC(=O)[O-].[Na+],2\nC1CC,3\n")
    first = read_molecules(path, _cfg(path, on_error="skip"))
    _data._PARSED.clear()
    calls = []
    monkeypatch.setattr(_data, "_parse", lambda *a, **k: calls.append(a))
    second = read_molecules(path, _cfg(path, on_error="skip"))
    assert calls == []  # everything came from the disk cache
    assert [r["input"] for r in second.records] == [r["input"] for r in first.records]
    assert second.info["data_quality"] == first.info["data_quality"]


# --- predict inputs ---------------------------------------------------------------------------


def test_read_smiles_inputs_keeps_good_and_reports_bad(tmp_path: Path) -> None:
    smi = tmp_path / "batch.smi"
    smi.write_text("CCN\n\nC1CC\nc1ccccc1\n")
    csv = _csv(tmp_path, "id,smiles\na,CCO\nb,[U]\n", "batch.csv")
    records, bad = read_smiles_inputs(
        ["CCO", "not a smiles", str(smi), csv, "C/C=C/C", str(tmp_path / "missing.csv")]
    )
    assert [r["input"] for r in records] == ["CCO", "CCN", "c1ccccc1", "CCO", "C/C=C/C"]
    assert records[0]["id"] == "input1" and records[1]["id"] == f"{smi}:row1"
    assert records[1]["meta"]["row"] == 1 and records[0]["target"] is None
    described = [b.describe() for b in bad]
    assert described[0] == "input2: unparseable SMILES (syntax error)"
    assert described[1] == f"{smi} row 2: empty SMILES"
    assert described[2] == f"{smi} row 3: unparseable SMILES (syntax error)"
    assert described[3].startswith(f"{csv} row 2: element(s) U")
    assert "missing.csv" in described[4] and "no such file" in described[4]
    assert bad[0].to_dict()["input"] == "not a smiles"


# --- graph featurisation cache ----------------------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = _featurize.mol_to_graph

    def counted(mol, *args, **kwargs):
        calls.append(mol.GetNumAtoms())
        return real(mol, *args, **kwargs)

    monkeypatch.setattr(_featurize, "mol_to_graph", counted)
    return calls


def test_featurize_caches_in_memory_and_on_disk(
    monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path
) -> None:
    calls = _counting(monkeypatch)
    smiles = ["CCO", "c1ccccc1", "CCO", "CC(=O)N"]
    graphs = featurize(smiles)
    assert len(calls) == 3  # the repeated molecule is featurised once
    assert graphs[0] is graphs[2]
    assert graphs[1].x.shape == (6, _featurize.ATOM_DIM)
    assert graphs[1].edge_index.shape == (2, 12)
    featurize(smiles)
    assert len(calls) == 3  # memory hit
    shards = list((_isolated_cache / "molgraphs" / _featurize.FEATURIZER_VERSION).glob("*.bin"))
    assert shards
    _data.clear_memory_cache()
    again = featurize(smiles)
    assert len(calls) == 3  # disk hit
    for a, b in zip(graphs, again, strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.edge_index, b.edge_index)
        np.testing.assert_array_equal(a.edge_attr, b.edge_attr)


def test_featurize_version_change_invalidates(
    monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path
) -> None:
    calls = _counting(monkeypatch)
    featurize(["CCO"])
    monkeypatch.setattr(_featurize, "FEATURIZER_VERSION", "test-next")
    featurize(["CCO"])
    assert len(calls) == 2
    assert (_isolated_cache / "molgraphs" / "test-next").is_dir()


def test_corrupt_cache_file_is_rebuilt(
    monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    featurize(["CCO", "CCN"])
    folder = _isolated_cache / "molgraphs" / _featurize.FEATURIZER_VERSION
    for shard in folder.glob("*.bin"):
        shard.write_bytes(shard.read_bytes()[:40])  # truncated
    _data.clear_memory_cache()
    calls = _counting(monkeypatch)
    graphs = featurize(["CCO", "CCN"])
    assert len(calls) == 2 and graphs[0].n_atoms == 3
    assert "unreadable" in caplog.text
    _data.clear_memory_cache()
    featurize(["CCO", "CCN"])
    assert len(calls) == 2  # the rebuilt files are readable


def test_featurize_memory_only_and_explicit_dir(tmp_path: Path, _isolated_cache: Path) -> None:
    featurize(["CCCC"], disk=False)
    assert not (_isolated_cache / "molgraphs").exists()
    featurize(["CCCCC"], cache_dir=tmp_path / "elsewhere")
    assert list((tmp_path / "elsewhere" / _featurize.FEATURIZER_VERSION).glob("*.bin"))


def test_featurize_lists_every_bad_position() -> None:
    with pytest.raises(DataValidationError, match=r"2 of 4 .*item 2: .*item 4: .*U"):
        featurize(["CCO", "C1CC", "CCN", "[U]"])


@pytest.mark.parametrize("smiles", ["[Fe+2].c1cc[cH-]c1.c1cc[cH-]c1", "[SbH6+3]"])
def test_standardised_smiles_always_parse_back(smiles: str) -> None:
    """Neutralising a metallocene ring or [SbH6+3] gives SMILES RDKit cannot read back
    (found in Tox21); the charged form is kept so featurisation never fails later."""
    from rdkit import Chem

    from medlearn.molecules._data import featurize, parse_smiles

    parsed = parse_smiles(smiles)
    assert parsed.problem is None
    assert Chem.MolFromSmiles(parsed.canonical) is not None
    assert featurize([parsed.canonical], disk=False)[0].n_atoms > 0


# --- repeated molecules ------------------------------------------------------------------------

# rows 1 and 3 are ethanol (aromatic/Kekulé-style spellings do not matter: canonical SMILES);
# rows 2 and 5 are benzene written two ways, with task a in conflict; rows 4 and 6 are propane
# with both tasks in conflict.
_REPEATS = "smiles,a,b\nCCO,1,0\nc1ccccc1,1,\nOCC,1,\nCCC,0,1\nC1=CC=CC=C1,0,1\nCCC,1,0\n"


def test_duplicates_kept_by_default_and_conflicts_counted(tmp_path: Path) -> None:
    path = _csv(tmp_path, _REPEATS)
    data = read_molecules(path, _cfg(path, ["a", "b"], "binary"))
    assert len(data.records) == 6
    by_input: dict[str, set[str]] = {}
    for r in data.records:
        by_input.setdefault(r["input"], set()).add(r["patient_id"])
    assert all(len(groups) == 1 for groups in by_input.values())  # copies share a group
    dup = data.info["data_quality"]["duplicate_molecules"]
    assert dup == {"repeats_kept_on_one_side": 3, "molecules_with_conflicting_labels": 2}


def test_duplicates_merge_resolves_labels_per_task(tmp_path: Path) -> None:
    path = _csv(tmp_path, _REPEATS)
    data = read_molecules(path, _cfg(path, ["a", "b"], "binary", duplicates="merge"))
    targets = {r["id"]: r["target"] for r in data.records}
    assert set(targets) == {"row1", "row2"}  # propane: every label conflicts, so it is dropped
    assert targets["row1"][0] == 1.0 and targets["row1"][1] == 0.0  # agreeing copies
    assert math.isnan(targets["row2"][0]) and targets["row2"][1] == 1.0  # a conflicts
    metas = {r["id"]: r["meta"] for r in data.records}
    assert metas["row1"]["rows"] == [1, 3] and metas["row2"]["rows"] == [2, 5]
    assert data.info["data_quality"]["duplicate_molecules"] == {
        "repeats_merged": 3,
        "molecules_with_conflicting_labels": 2,
        "dropped_all_labels_conflicting": 1,
    }


def test_duplicates_merge_averages_regression_values(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,y\nCCO,1.0\nOCC,2.0\nCCN,5\n")
    data = read_molecules(path, _cfg(path, "y", "regression", duplicates="merge"))
    assert {r["input"]: r["target"] for r in data.records} == {"CCO": 1.5, "CCN": 5.0}
    assert (
        "molecules_with_conflicting_labels" not in data.info["data_quality"]["duplicate_molecules"]
    )


def test_duplicates_merge_drops_a_conflicting_single_binary_label(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,y\nCCO,1\nOCC,0\nCCN,1\nNCC,1\n")
    data = read_molecules(path, _cfg(path, "y", "binary", duplicates="merge"))
    assert [(r["id"], r["target"]) for r in data.records] == [("row3", 1)]


def test_duplicates_option_is_checked(tmp_path: Path) -> None:
    path = _csv(tmp_path, "smiles,y\nCCO,1.0\n")
    with pytest.raises(ConfigError, match="duplicates must be 'keep'.*or 'merge'"):
        read_molecules(path, _cfg(path, "y", "regression", duplicates="first"))
