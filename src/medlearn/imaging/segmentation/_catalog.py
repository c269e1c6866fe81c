"""Catalog entries for segmentation: ISBI-2012 EM membranes and TotalSegmentator examples.

Local copies live under ``$MEDLEARN_DATA_DIR/segmentation`` (sha256 from its SOURCE.md). They
are repackaged files from GitHub repositories, so there is no official URL for these exact
bytes: ``url`` is ``None`` and a missing file is reported with where to get it.
"""

from __future__ import annotations

from medlearn.catalog import DatasetSpec, register

__all__ = ["SEGMENTATION_SPECS"]

_TOTALSEG_NOTE = (
    "The label map is a TotalSegmentator model output (a test reference), not manual ground "
    "truth: use it for 3-D pipeline and I/O checks only, never for accuracy claims. From "
    "github.com/wasserth/TotalSegmentator tests/reference_files (commit 0e65a448)."
)
_TOTALSEG_CITATION = (
    "Wasserthal J et al. TotalSegmentator: robust segmentation of 104 anatomic structures in "
    "CT images. Radiol Artif Intell 5(5):e230024 (2023)."
)

SEGMENTATION_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="isbi2012_membranes",
        domain="imaging",
        task="segmentation",
        relpath="segmentation/isbi2012_membrane_train30.tar.gz",
        url=None,
        checksums={"sha256": ["419bb33701b32c6202265e671818cde1ee730b34e7c391b127d46ccfa139fbba"]},
        size_bytes=6499236,
        classes=["background", "membrane"],
        description=(
            "ISBI 2012 EM segmentation challenge: 30 serial-section TEM images (512x512, "
            "Drosophila ventral nerve cord) with binary neuronal-membrane masks. Membranes "
            "(dark in the masks) are the foreground class."
        ),
        license="Free for research with citation (Cardona et al. 2010); packaging MIT.",
        citation=(
            "Arganda-Carreras I et al. Crowdsourcing the creation of image segmentation "
            "algorithms for connectomics. Front Neuroanat 9:142 (2015)."
        ),
        reader="segmentation",
        reader_options={"foreground": "dark", "binary": True},
        notes=(
            "Packed from github.com/zhixuhao/unet data/membrane/train (commit b45af4d4); "
            "not downloadable as this file. No official split: hold cases out with "
            "data.split (the example uses 18/6/6)."
        ),
    ),
    DatasetSpec(
        name="totalsegmentator_ct_example",
        domain="imaging",
        task="segmentation",
        relpath="segmentation/TotalSegmentator_example_ct_sm.nii.gz",
        url=None,
        checksums={"sha256": ["e50c00b2914e2cac0aaee8e7f3b5f57d44d9f21bfd5c0577271c54c0cb49e9fb"]},
        size_bytes=483312,
        description="TotalSegmentator example CT (122x101x30 at 3 mm) with a 41-class label map.",
        license="Apache-2.0 (repository); dataset CC BY 4.0",
        citation=_TOTALSEG_CITATION,
        reader="segmentation",
        reader_options={"mask": "TotalSegmentator_example_seg.nii.gz"},
        notes=_TOTALSEG_NOTE,
    ),
    DatasetSpec(
        name="totalsegmentator_mr_example",
        domain="imaging",
        task="segmentation",
        relpath="segmentation/TotalSegmentator_example_mr_sm.nii.gz",
        url=None,
        checksums={"sha256": ["209b46efaff595dd54a9332872e17a722b62654bbb68dbd89acd5090701bbd4f"]},
        size_bytes=277762,
        description="TotalSegmentator example MR (117x91x20 at 3 mm) with a 23-class label map.",
        license="Apache-2.0 (repository); dataset CC BY 4.0",
        citation=_TOTALSEG_CITATION,
        reader="segmentation",
        reader_options={"mask": "TotalSegmentator_example_seg_mr.nii.gz"},
        notes=_TOTALSEG_NOTE,
    ),
)

for _spec in SEGMENTATION_SPECS:
    register(_spec)
