"""Catalog entries of the MoleculeNet property-prediction sets and their SMILES union.

The files are the chemprop-format copies listed in the shared data directory's
``moleculenet/SOURCE.md`` (``smiles`` first, then the targets); checksums are the sha256
digests recorded there and URLs point at the exact commits those copies came from, so a
download matches the checksum. Every entry is read by the ``molecules`` reader with its
default target(s), used when a run file keeps ``data.target: label``.

All entries set ``on_error: skip``: a few molecules (aluminium and germanium complexes in
Tox21 and HIV, uranium and actinium compounds in HIV) are refused by this RDKit or fall
outside the featuriser's element set; they are left out, counted in the data-quality report
and listed by row number in ``info["skipped_rows"]``.
"""

from __future__ import annotations

from medlearn.catalog import DatasetSpec, register

__all__ = ["MOLECULE_SPECS", "TOX21_TASKS"]

_MIXKEY = "https://raw.githubusercontent.com/josieyi/Mix-Key/ec5befb703394ea45fef24140c507fcf0ec8aef0/data"
_HIV_URL = (
    "https://raw.githubusercontent.com/nguyen20171410/Chemical-Graph/"
    "8b3562180ddff40e9505988a5eb3a21ad7c836ec/HIV.csv"
)
_LICENSE = "MIT (MoleculeNet / DeepChem); see each dataset's original terms"
_MOLECULENET = (
    "Wu Z, Ramsundar B, Feinberg EN, et al. MoleculeNet: a benchmark for molecular machine "
    "learning. Chem. Sci. 9:513-530 (2018)."
)
_NOTES = (
    "Chemprop-format copy (smiles column first). Read with on_error: skip, so molecules this "
    "RDKit refuses are left out and counted in the data-quality report."
)

#: The 12 Tox21 assays, in file order.
TOX21_TASKS: tuple[str, ...] = (
    "NR-AR",
    "NR-AR-LBD",
    "NR-AhR",
    "NR-Aromatase",
    "NR-ER",
    "NR-ER-LBD",
    "NR-PPAR-gamma",
    "SR-ARE",
    "SR-ATAD5",
    "SR-HSE",
    "SR-MMP",
    "SR-p53",
)


def _spec(
    name: str,
    file: str,
    sha256: str,
    size: int,
    task: str,
    target: str | list[str],
    description: str,
    citation: str,
    url: str | None = None,
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        domain="molecules",
        task=task,
        relpath=f"moleculenet/{file}",
        url=url or f"{_MIXKEY}/{file}",
        checksums={"sha256": [sha256]},
        size_bytes=size,
        description=description,
        license=_LICENSE,
        citation=f"{citation} {_MOLECULENET}",
        reader="molecules",
        reader_options={"target": target, "on_error": "skip"},
        notes=_NOTES,
    )


MOLECULE_SPECS: tuple[DatasetSpec, ...] = (
    _spec(
        "esol",
        "esol.csv",
        "f959a0821e852bc37a0609109daa6a981880d161ce71195b47bf9bc48dbd1199",
        34474,
        "regression",
        "measured log solubility in mols per litre",
        "ESOL (Delaney): 1,128 molecules, aqueous solubility log(mol/L) (regression).",
        "Delaney JS. ESOL: estimating aqueous solubility directly from molecular structure. "
        "J. Chem. Inf. Comput. Sci. 44:1000-1005 (2004).",
    ),
    _spec(
        "freesolv",
        "freesolv.csv",
        "390418d628e265ffed42fa0a979c0034d56f1304522e97845fa98ff324111d7c",
        14823,
        "regression",
        "expt",
        "FreeSolv: 642 small molecules, experimental hydration free energy in kcal/mol "
        "(regression).",
        "Mobley DL, Guthrie JP. FreeSolv: a database of experimental and calculated hydration "
        "free energies. J. Comput. Aided Mol. Des. 28:711-720 (2014).",
    ),
    _spec(
        "bbbp",
        "bbbp.csv",
        "55d3978a6766b43462db4de2f9e787c14deb80329c99585d061150e68f7b1c37",
        113118,
        "binary",
        "p_np",
        "BBBP: 2,039 compounds, blood-brain barrier penetration (p_np, binary); usually "
        "evaluated with a scaffold split.",
        "Martins IF, Teixeira AL, Pinheiro L, Falcao AO. A Bayesian approach to in silico "
        "blood-brain barrier penetration modeling. J. Chem. Inf. Model. 52:1686-1697 (2012).",
    ),
    _spec(
        "bace",
        "bace.csv",
        "d050b0c79a1b101532172ec503819633b73cca0f4d009c88ef6c6d20e5d85ef9",
        104745,
        "binary",
        "Class",
        "BACE: 1,513 inhibitors of human beta-secretase 1 (Class, binary).",
        "Subramanian G, Ramsundar B, Pande V, Denny RA. Computational modeling of "
        "beta-secretase 1 (BACE-1) inhibitors using ligand based approaches. J. Chem. Inf. "
        "Model. 56:1936-1949 (2016).",
    ),
    _spec(
        "clintox",
        "clintox.csv",
        "e7c492cd96d8a021e0600b430cfadc858c04a7e9ed5002cdbe5afe326348636a",
        96278,
        "binary",
        ["FDA_APPROVED", "CT_TOX"],
        "ClinTox: 1,478 drugs, 2 binary tasks: FDA approval and failure in clinical trials "
        "for toxicity.",
        "Gayvert KM, Madhukar NS, Elemento O. A data-driven approach to predicting successes "
        "and failures of clinical trials. Cell Chem. Biol. 23:1294-1301 (2016).",
    ),
    _spec(
        "tox21",
        "tox21.csv",
        "36a2dfdc5a27598db16c197be9dfd6f4e2c35d96c26bf08fa0371c67f795063c",
        466467,
        "binary",
        list(TOX21_TASKS),
        "Tox21: 7,831 compounds, 12 binary toxicity assays (nuclear receptor and stress "
        "response) with missing labels.",
        "Tox21 Data Challenge 2014, NIH/NCATS.",
    ),
    _spec(
        "hiv",
        "hiv.csv",
        "5a46fcade9c84cf716230f23a54080fe23c1d16105bee62872c69bbce43fe19e",
        2027961,
        "binary",
        "target",
        "HIV: 41,100 compounds of the NCI DTP AIDS antiviral screen; target = HIV_active "
        "(1,443 positives); usually evaluated with a scaffold split.",
        "AIDS Antiviral Screen Data, NCI Developmental Therapeutics Program.",
        url=_HIV_URL,
    ),
)

#: The union of the SMILES of every set above (generation training data).
MOLECULENET_SMILES = DatasetSpec(
    name="moleculenet_smiles",
    domain="molecules",
    task="generation",
    relpath="moleculenet/hiv.csv",
    url=_HIV_URL,
    checksums={"sha256": ["5a46fcade9c84cf716230f23a54080fe23c1d16105bee62872c69bbce43fe19e"]},
    size_bytes=2027961,
    description=(
        "The unique canonical (standardised) SMILES of ESOL, FreeSolv, BBBP, BACE, ClinTox, "
        "Tox21 and HIV together, without targets: training data for molecule generation."
    ),
    license=_LICENSE,
    citation=_MOLECULENET,
    reader="molecules",
    reader_options={
        "union_datasets": ["esol", "freesolv", "bbbp", "bace", "clintox", "tox21"],
        "on_error": "skip",
    },
    notes=(
        "Reads hiv.csv and the six other MoleculeNet files (each checked against its own "
        "catalog checksum); molecules repeated across files are merged and counted."
    ),
)

for _spec_entry in (*MOLECULE_SPECS, MOLECULENET_SMILES):
    register(_spec_entry)
