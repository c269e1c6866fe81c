"""Catalog entries of the PhysioNet/CinC Challenge 2012 ICU mortality sets.

Checksums are the sha256 digests listed in the shared data directory's
``physionet2012/SOURCE.md``; URLs are the official physionet.org v1.0.0 files. The outcomes
file (``Outcomes-a.txt``) is read from beside the set's tarball.
"""

from __future__ import annotations

from medlearn.catalog import DatasetSpec, register

__all__ = ["TIMESERIES_SPECS"]

_URL = "https://physionet.org/files/challenge-2012/1.0.0"
_SHA_A = "cba4b712881d352574349b46ed74ef7115e13197921ddccc0899cb786ab62174"
_SHA_B = "e10eb42064207ccc8771e81bfea63c80a59ab15e44f3b57ea6ba81e25ed06810"
_LICENSE = "ODC-By 1.0 (Open Data Commons Attribution)"
_CITATION = (
    "Silva I, Moody G, Scott DJ, Celi LA, Mark RG. Predicting in-hospital mortality of ICU "
    "patients: the PhysioNet/Computing in Cardiology Challenge 2012. Computing in Cardiology "
    "39:245-248 (2012)."
)
_DESC = (
    "PhysioNet/CinC Challenge 2012: {n} ICU stays, the first 48 h of up to 37 vitals and labs "
    "(irregular, sparse) plus Age, Gender, Height, ICUType, Weight; target in-hospital death "
    "({deaths}). Outcomes-{s}.txt beside the tarball also gives SAPS-I, SOFA, length of stay "
    "and survival days."
)
_NOTES = (
    "The outcomes file Outcomes-{s}.txt must lie beside the tarball. The shared copy is a git "
    "archive of the same records; it was not compared byte for byte with physionet.org."
)


def _set_spec(s: str, sha256: str, size_bytes: int, deaths: int) -> DatasetSpec:
    """The catalog entry of one PhysioNet 2012 set (``s`` = ``"a"`` or ``"b"``)."""
    return DatasetSpec(
        name=f"physionet2012_{s}",
        domain="clinical",
        task="binary",
        relpath=f"physionet2012/set-{s}.tar.gz",
        url=f"{_URL}/set-{s}.tar.gz",
        checksums={"sha256": [sha256]},
        size_bytes=size_bytes,
        classes=("survived", "died"),
        description=_DESC.format(n="4,000", deaths=f"{deaths} deaths", s=s),
        license=_LICENSE,
        citation=_CITATION,
        reader="timeseries",
        notes=_NOTES.format(s=s),
    )


TIMESERIES_SPECS: tuple[DatasetSpec, ...] = (
    _set_spec("a", _SHA_A, 6304272, 554),
    _set_spec("b", _SHA_B, 6055568, 568),
    DatasetSpec(
        name="physionet2012",
        domain="clinical",
        task="binary",
        relpath="physionet2012/set-a.tar.gz",
        url=f"{_URL}/set-a.tar.gz",
        checksums={"sha256": [_SHA_A]},
        size_bytes=6304272,
        classes=("survived", "died"),
        description=(
            "PhysioNet/CinC Challenge 2012, the standard protocol: train and validate on set-a "
            "(4,000 stays), test on set-b (4,000 stays) - the official split (given)."
        ),
        license=_LICENSE,
        citation=_CITATION,
        reader="timeseries",
        reader_options={"test": "set-b.tar.gz"},
        notes=(
            "set-b.tar.gz, Outcomes-a.txt and Outcomes-b.txt must lie beside set-a.tar.gz; "
            "set-b is read from there (its checksum is the physionet2012_b entry's)."
        ),
    ),
)

for _spec in TIMESERIES_SPECS:
    register(_spec)
