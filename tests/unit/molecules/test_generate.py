"""Molecule generators: tokenisation, fitting tiny models, sampling, save/load, optimisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("selfies")

from medlearn.bundle import read_manifest, write_manifest  # noqa: E402
from medlearn.config import validate_config  # noqa: E402
from medlearn.data import LoadedData, make_record  # noqa: E402
from medlearn.errors import ConfigError, NotFittedError  # noqa: E402
from medlearn.molecules._generate import MoleculeGenerator  # noqa: E402
from medlearn.molecules._moses import property_values  # noqa: E402
from medlearn.molecules._vocab import (  # noqa: E402
    EOS,
    UNK,
    Vocabulary,
    canonical_smiles,
    from_tokens,
    is_constrained,
    smiles_tokens,
    to_tokens,
)
from medlearn.registry import LEARNERS, MODELS  # noqa: E402

SMILES_50 = """CCO CCN CC(=O)O CC(=O)OC1=CC=CC=C1C(=O)O CN1C=NC2=C1C(=O)N(C(=O)N2C)C c1ccccc1
Oc1ccccc1 Nc1ccccc1 Clc1ccccc1 Brc1ccccc1 CC(C)Cc1ccc(cc1)C(C)C(=O)O CC(=O)Nc1ccc(O)cc1
c1ccc2ccccc2c1 c1ccncc1 C1CCCCC1 C1CCNCC1 C1CCOC1 OC(=O)c1ccccc1 CC(C)O CCCCCC CCOC(=O)C
COc1ccccc1 Cc1ccccc1 Cc1ccc(C)cc1 O=C1CCCCC1 NC(=O)c1ccccc1 CC(N)C(=O)O NCC(=O)O OCC(O)CO
CC#N c1ccc(cc1)C(=O)c1ccccc1 c1ccc(cc1)Oc1ccccc1 CN(C)C CCCl FC(F)(F)c1ccccc1
O=[N+]([O-])c1ccccc1 CS(=O)(=O)C c1ccsc1 c1cc[nH]c1 c1ccoc1 CC1=CC(=O)C=CC1=O OC1CCCCC1
CCCCO CC(C)(C)O c1ccc2[nH]ccc2c1 C1=CC=CN=C1N CCOCC NC1CCCCC1 O=C(O)CCC(=O)O
c1ccc(cc1)-c1ccccc1""".split()

TINY_VAE = {"embed_dim": 16, "hidden_dim": 48, "latent_dim": 8, "encoder_dim": 24, "max_len": 40}


def _records(smiles: list[str]) -> list[dict]:
    return [make_record(f"row{i + 1}", canonical_smiles(s)) for i, s in enumerate(smiles)]


@pytest.fixture(scope="module")
def molecules() -> list[dict]:
    return _records(SMILES_50)


def _fit(model: str, params: dict, records: list[dict], tmp: Path, **kw) -> MoleculeGenerator:
    settings = {"epochs": 6, "batch_size": 16, "lr": 5e-3, "seed": 0, "num_threads": 1, **kw}
    gen = MoleculeGenerator(model=model, model_params=params, **settings)
    gen.fit(records[:44], records[44:], work_dir=tmp, resume=False)
    return gen


@pytest.fixture(scope="module")
def vae(molecules: list[dict], tmp_path_factory: pytest.TempPathFactory) -> MoleculeGenerator:
    return _fit("selfies_vae", TINY_VAE, molecules, tmp_path_factory.mktemp("vae"))


# --- tokenisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "smiles",
    [
        "Clc1ccc(Br)cc1",
        "c1cc[nH]c1",
        "C[C@@H](N)C(=O)O",
        "F/C=C/F",
        "C1CC2CCC1CC%10CCCCC%102",
        "O=[N+]([O-])c1ccccc1",
    ],
)
def test_smiles_tokens_round_trip(smiles: str) -> None:
    tokens = smiles_tokens(smiles)
    assert "".join(tokens) == smiles
    assert all(len(t) <= 2 or t.startswith(("[", "%")) for t in tokens)


def test_smiles_tokens_keep_atoms_whole() -> None:
    assert smiles_tokens("Clc1ccc[nH]1") == ["Cl", "c", "1", "c", "c", "c", "[nH]", "1"]
    assert "%10" in smiles_tokens("C%10CCCCC%10")


@pytest.mark.parametrize("smiles", SMILES_50[:20])
def test_selfies_round_trip(smiles: str) -> None:
    canonical = canonical_smiles(smiles)
    tokens = to_tokens(canonical, "selfies")
    assert tokens and all(t.startswith("[") for t in tokens)
    assert from_tokens(tokens, "selfies") == canonical
    assert from_tokens(smiles_tokens(canonical), "smiles") == canonical


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("[C]", True),
        ("[=N+1]", True),
        ("[C@@H1]", True),
        ("[Branch1]", True),
        ("[=Ring2]", True),
        ("[Cl]", True),
        ("[Si]", False),
        ("[Cu-2]", False),
        ("[Br-1]", False),
    ],
)
def test_selfies_constrained_atoms(token: str, expected: bool) -> None:
    assert is_constrained(token) is expected


def test_vocabulary_encode_decode_and_json() -> None:
    vocab = Vocabulary.build([["[C]", "[O]"], ["[C]", "[N]"]], "selfies")
    assert vocab.tokens[4] == "[C]"  # most frequent first
    ids = vocab.encode(["[C]", "[N]", "[Xe]"])
    assert ids[-1] == UNK
    assert vocab.decode([*ids[:2], EOS, ids[0]]) == ["[C]", "[N]"]
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again.tokens == vocab.tokens and again.representation == "selfies"
    mask = vocab.start_mask()
    assert mask[:4] == [False] * 4 and all(mask[4:])


def test_unknown_representation_is_refused() -> None:
    with pytest.raises(ConfigError, match="representation"):
        Vocabulary([], "inchi")  # type: ignore[arg-type]


# --- registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["selfies_vae", "smiles_vae", "char_rnn"])
def test_generators_are_registered(name: str) -> None:
    meta = MODELS.meta(name)
    assert meta["domain"] == "molecules" and meta["learner"] == "molecule_generator"
    assert meta["tasks"] == ("generation",) and meta["reader"] == "molecules"
    arch = MODELS.get(name)(**meta["tiny"])
    assert arch["evaluation"]["n_samples"] == meta["tiny"]["n_samples"]
    assert LEARNERS.get("molecule_generator") is MoleculeGenerator


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"word_dropout": 1.5}, "word_dropout"),
        ({"similarity_min": 2}, "similarity_min"),
        ({"n_samples": 0}, "n_samples"),
    ],
)
def test_bad_params_are_refused(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MODELS.get("selfies_vae")(**params)


def test_from_config_needs_the_generation_task() -> None:
    data = LoadedData(records=_records(SMILES_50[:3]))
    cfg = validate_config(
        {"task": "regression", "data": {"path": "x.csv"}, "model": {"name": "selfies_vae"}}
    )
    with pytest.raises(ConfigError, match="task: generation"):
        MoleculeGenerator.from_config(cfg, data)
    cfg = validate_config(
        {
            "task": "generation",
            "data": {"path": "x.csv"},
            "model": {"name": "selfies_vae", "params": {"hidden": 3}},
        }
    )
    with pytest.raises(ConfigError, match="Unknown params"):
        MoleculeGenerator.from_config(cfg, data)


# --- fit and sample -----------------------------------------------------------------------------


def test_vae_fits_and_samples_valid_molecules(vae: MoleculeGenerator) -> None:
    samples = vae.sample(60, seed=1)
    assert len(samples) == 60
    assert all(s is not None for s in samples)  # SELFIES: valid by construction
    assert len(set(samples)) > 10
    assert all(canonical_smiles(s) == s for s in samples)


def test_vae_training_lowers_the_loss(vae: MoleculeGenerator) -> None:
    # history of the module-scoped fit: 6 epochs, loss on train and val each epoch
    gen = vae
    assert gen.vocab_ is not None and len(gen.vocab_) > 10
    nll = gen.nll([canonical_smiles(s) for s in SMILES_50[:5]])
    assert np.isfinite(nll).all() and (nll > 0).all()


def test_history_and_early_stopping(molecules: list[dict], tmp_path: Path) -> None:
    gen = MoleculeGenerator(
        model="char_rnn",
        model_params={"embed_dim": 16, "hidden_dim": 32, "num_layers": 1, "max_len": 40},
        epochs=8,
        batch_size=16,
        lr=1e-2,
        seed=0,
        num_threads=1,
    )
    report = gen.fit(molecules[:44], molecules[44:], work_dir=tmp_path, resume=False)
    losses = [h["train_loss"] for h in report.history]
    assert len(report.history) == report.epochs[0] == 8
    assert losses[-1] < losses[0] * 0.8
    assert {"val_loss", "train_recon", "epoch"} <= set(report.history[0])
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_char_rnn_selfies_samples_are_valid(molecules: list[dict], tmp_path: Path) -> None:
    params = {"representation": "selfies", "embed_dim": 16, "hidden_dim": 32, "num_layers": 1}
    gen = _fit("char_rnn", params, molecules, tmp_path, epochs=3)
    samples = gen.sample(40, seed=0)
    assert all(s is not None for s in samples)
    with pytest.raises(ConfigError, match="latent space"):
        gen.optimize("qed")


def test_sampling_is_seeded(vae: MoleculeGenerator) -> None:
    assert vae.sample(20, seed=7) == vae.sample(20, seed=7)
    assert vae.sample(20, seed=7, batch_size=3) == vae.sample(20, seed=7, batch_size=3)
    assert vae.sample(20, seed=7) != vae.sample(20, seed=8)
    assert vae.sample(20, seed=7, temperature=0.5) != vae.sample(20, seed=7)


def test_time_budget_stops_training(molecules: list[dict], tmp_path: Path) -> None:
    gen = MoleculeGenerator(model="selfies_vae", model_params=TINY_VAE, max_minutes=1e-9)
    report = gen.fit(molecules, [], work_dir=tmp_path, resume=False)
    assert report.stopped_by == ["max_time"] and report.epochs == [0]
    assert len(gen.sample(3, seed=0)) == 3  # an untrained network still samples


def test_resume_continues_from_the_last_epoch(molecules: list[dict], tmp_path: Path) -> None:
    kw = {"batch_size": 16, "seed": 0, "num_threads": 1}
    first = MoleculeGenerator(model="selfies_vae", model_params=TINY_VAE, epochs=1, **kw)
    r1 = first.fit(molecules[:44], molecules[44:], work_dir=tmp_path, resume=False)
    second = MoleculeGenerator(model="selfies_vae", model_params=TINY_VAE, epochs=2, **kw)
    r2 = second.fit(molecules[:44], molecules[44:], work_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in r2.history] == [1, 2]
    assert r2.history[0] == r1.history[0]


def test_unfitted_generator_says_what_to_call() -> None:
    with pytest.raises(NotFittedError, match="fit"):
        MoleculeGenerator(model="selfies_vae").sample(3)


def test_predict_logits_and_explain_point_to_sample(vae: MoleculeGenerator) -> None:
    with pytest.raises(ConfigError, match="sample"):
        vae.predict_logits([])
    with pytest.raises(ConfigError, match="sample"):
        vae.explain([], [])


def test_read_inputs_reports_bad_smiles(vae: MoleculeGenerator) -> None:
    records, bad = vae.read_inputs(["CCO", "C1CC", "c1ccccc1"])
    assert [r["input"] for r in records] == ["CCO", "c1ccccc1"]
    assert len(bad) == 1 and "input2" in bad[0].message


# --- persistence ------------------------------------------------------------------------------


def test_save_load_gives_the_same_samples(vae: MoleculeGenerator, tmp_path: Path) -> None:
    fields = vae.save(tmp_path / "bundle")
    write_manifest(tmp_path / "bundle", {**fields, "task": "generation"})
    manifest = read_manifest(tmp_path / "bundle")
    loaded = MoleculeGenerator.load(Path(manifest["_dir"]), manifest)
    assert loaded.sample(25, seed=3) == vae.sample(25, seed=3)
    assert loaded.train_smiles_ == vae.train_smiles_
    z = loaded.encode(["CCO", "c1ccccc1"])
    np.testing.assert_allclose(z, vae.encode(["CCO", "c1ccccc1"]), rtol=1e-5)


# --- latent space ---------------------------------------------------------------------------------


def test_encode_decode_shapes(vae: MoleculeGenerator) -> None:
    z = vae.encode(["CCO", "c1ccccc1", "[Si](C)(C)(C)C"])  # Si: outside the SELFIES table
    assert z.shape == (3, 8)
    assert np.isfinite(z[:2]).all() and np.isnan(z[2]).all()
    recon = vae.reconstruct(["CCO", "[Si](C)(C)(C)C"])
    assert recon[1] is None and isinstance(recon[0], str)


def test_optimisation_improves_qed(vae: MoleculeGenerator) -> None:
    pool = [canonical_smiles(s) for s in SMILES_50]
    qed = property_values(pool, "qed")
    starts = [pool[i] for i in np.argsort(qed)[:6]]  # the least drug-like molecules
    out = vae.optimize(
        "qed", starts=starts, reference=pool, n_start=6, steps=10, similarity_min=0.0, seed=0
    )
    found = [r for r in out["results"] if r["smiles"] is not None]
    assert found and max(r["improvement"] for r in found) > 0
    for r in found:  # reported values are the molecules' real QED
        assert r["value"] == pytest.approx(property_values([r["smiles"]], "qed")[0], abs=1e-5)
    strict = vae.optimize("qed", starts=starts, n_start=6, steps=5, similarity_min=1.0, seed=0)
    assert all(r["smiles"] is None for r in strict["results"])  # nothing identical is kept


def test_bootstrap_ci_of_a_mean() -> None:
    from medlearn.molecules._generate_task import bootstrap_mean_ci

    assert bootstrap_mean_ci(np.ones(50), bootstrap=100, seed=0) == [1.0, 1.0]
    values = np.random.default_rng(0).random(400)
    lo, hi = bootstrap_mean_ci(values, bootstrap=300, seed=0)
    assert lo < values.mean() < hi and hi - lo < 0.1
    assert bootstrap_mean_ci(values, bootstrap=0, seed=0) is None
    assert bootstrap_mean_ci(values[:1], bootstrap=100, seed=0) is None
