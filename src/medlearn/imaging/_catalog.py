"""Catalog entries of the imaging domain: the 2-D MedMNIST v2 classification sets (28 x 28).

URLs, MD5 digests and label names are the official ones listed in MedMNIST's
``medmnist/info.py`` (v3.0.2, Zenodo record 10519652). Only PneumoniaMNIST is in the
project's shared data directory; that copy is not byte-identical to the Zenodo file (its
train split was subsampled), so its sha256 is accepted alongside the official MD5.

Left out: ChestMNIST (multi-label), RetinaMNIST (ordinal regression) and the 3-D sets.
"""

from __future__ import annotations

from medlearn.catalog import DatasetSpec, register

__all__ = ["MEDMNIST_SPECS"]

_ZENODO = "https://zenodo.org/records/10519652/files/{name}.npz?download=1"
_CITATION = (
    "Yang J, Shi R, Wei D, Liu Z, Zhao L, Ke B, Pfister H, Ni B. MedMNIST v2 - A large-scale "
    "lightweight benchmark for 2D and 3D biomedical image classification. Scientific Data "
    "10:41 (2023). doi:10.1038/s41597-022-01721-8"
)
_NOT_SHARED = (
    "Not in the shared data directory; `medlearn data fetch {name}` downloads the official "
    "file from Zenodo into the cache."
)
_ORGANS = [
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
]


def _medmnist(
    name: str,
    *,
    task: str,
    md5: list[str],
    classes: list[str],
    description: str,
    sha256: list[str] | None = None,
    license: str = "CC BY 4.0",
    notes: str | None = None,
    size_bytes: int | None = None,
) -> DatasetSpec:
    checksums: dict[str, list[str]] = {"md5": md5}
    if sha256:
        checksums["sha256"] = sha256
    return DatasetSpec(
        name=name,
        domain="imaging",
        task=task,
        relpath=f"medmnist/{name}.npz",
        url=_ZENODO.format(name=name),
        checksums=checksums,
        size_bytes=size_bytes,
        classes=classes,
        description=description,
        license=license,
        citation=_CITATION,
        reader="imaging",
        reader_options={},
        notes=notes if notes is not None else _NOT_SHARED.format(name=name),
    )


MEDMNIST_SPECS: tuple[DatasetSpec, ...] = (
    _medmnist(
        "pneumoniamnist",
        task="binary",
        md5=["28209eda62fecd6e6a2d98b1501bb15f"],
        sha256=["a554d2332488d3ddc075125e66a1af77ec379fd2bafc09108ab95a37e2bd9c26"],
        classes=["normal", "pneumonia"],
        description=(
            "Paediatric chest X-rays (Kermany et al. 2018), pneumonia vs normal, grayscale "
            "1x28x28. Official splits: train 4708 / val 524 / test 624."
        ),
        notes=(
            "The copy in the shared data directory (sha256 a554d233...) is not byte-identical "
            "to the Zenodo file: its uploader subsampled train to 3882 images (388 normal / "
            "3494 pneumonia; official 1214 / 3494). val (524) and test (624) match the "
            "official splits exactly."
        ),
    ),
    _medmnist(
        "breastmnist",
        task="binary",
        md5=["750601b1f35ba3300ea97c75c52ff8f6"],
        classes=["malignant", "normal, benign"],
        description=(
            "Breast ultrasound (Al-Dhabyani et al. 2020), malignant vs normal/benign, "
            "grayscale 1x28x28. Splits: train 546 / val 78 / test 156."
        ),
    ),
    _medmnist(
        "dermamnist",
        task="multiclass",
        md5=["0744692d530f8e62ec473284d019b0c7"],
        classes=[
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ],
        description=(
            "Dermatoscopic images of pigmented skin lesions (HAM10000), 7 diagnoses, "
            "RGB 3x28x28. Splits: train 7007 / val 1003 / test 2005."
        ),
        license="CC BY-NC 4.0",
    ),
    _medmnist(
        "bloodmnist",
        task="multiclass",
        md5=["7053d0359d879ad8a5505303e11de1dc"],
        classes=[
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ],
        description=(
            "Microscopy of normal blood cells (Acevedo et al. 2020), 8 cell types, RGB "
            "3x28x28. Splits: train 11959 / val 1712 / test 3421."
        ),
    ),
    _medmnist(
        "pathmnist",
        task="multiclass",
        md5=["a8b06965200029087d5bd730944a56c1"],
        classes=[
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ],
        description=(
            "Colorectal cancer histology patches (NCT-CRC-HE-100K / CRC-VAL-HE-7K), 9 tissue "
            "types, RGB 3x28x28. Splits: train 89996 / val 10004 / test 7180."
        ),
    ),
    _medmnist(
        "octmnist",
        task="multiclass",
        md5=["c68d92d5b585d8d81f7112f81e2d0842"],
        classes=["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
        description=(
            "Retinal optical coherence tomography (Kermany et al. 2018), 4 diagnoses, "
            "grayscale 1x28x28. Splits: train 97477 / val 10832 / test 1000."
        ),
    ),
    _medmnist(
        "organamnist",
        task="multiclass",
        # v3 (Zenodo 10519652) and v2 (Zenodo 6496656) releases differ for this set.
        md5=["68e3f8846a6bd62f0c9bf841c0d9eacc", "866b832ed4eeba67bfb9edee1d5544e6"],
        classes=list(_ORGANS),
        description=(
            "Abdominal CT (LiTS), axial slices through 11 organs, grayscale 1x28x28. "
            "Splits: train 34581 / val 6491 / test 17778."
        ),
    ),
    _medmnist(
        "organcmnist",
        task="multiclass",
        md5=["0afa5834fb105f7705a7d93372119a21"],
        classes=list(_ORGANS),
        description=(
            "Abdominal CT (LiTS), coronal slices through 11 organs, grayscale 1x28x28. "
            "Splits: train 13000 / val 2392 / test 8268."
        ),
    ),
    _medmnist(
        "organsmnist",
        task="multiclass",
        md5=["e5c39f1af030238290b9557d9503af9d"],
        classes=list(_ORGANS),
        description=(
            "Abdominal CT (LiTS), sagittal slices through 11 organs, grayscale 1x28x28. "
            "Splits: train 13940 / val 2452 / test 8829."
        ),
    ),
    _medmnist(
        "tissuemnist",
        task="multiclass",
        md5=["ebe78ee8b05294063de985d821c1c34b"],
        classes=[
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ],
        description=(
            "Kidney cortex cells (BBBC051), 8 cell types, grayscale 1x28x28. "
            "Splits: train 165466 / val 23640 / test 47280."
        ),
    ),
)

for _spec in MEDMNIST_SPECS:
    register(_spec)
