"""Catalog entries of the tabular clinical datasets (UCI heart disease, Pima, WBC, CKD).

Checksums are the sha256 digests listed in the shared data directory's ``tabular/SOURCE.md``;
URLs are the official UCI pages (Pima was withdrawn from UCI; its Kaggle copy is CC0). Column
names come from each dataset's ``.names`` file, so headerless files read with named columns
and ``data.dataset: heart_cleveland`` works with ``data.target: num > 0``.
"""

from __future__ import annotations

from medlearn.catalog import DatasetSpec, register

__all__ = ["TABULAR_SPECS"]

_HEART_SCHEMA = {
    "age": {"type": "numeric", "unit": "years", "min": 0, "max": 120},
    "sex": {"type": "binary", "levels": ["0", "1"]},
    "cp": {"type": "categorical", "levels": ["1", "2", "3", "4"]},
    "trestbps": {"type": "numeric", "unit": "mm Hg", "min": 50, "max": 300},
    "chol": {"type": "numeric", "unit": "mg/dl", "min": 50, "max": 700},
    "fbs": {"type": "binary", "levels": ["0", "1"]},
    "restecg": {"type": "categorical", "levels": ["0", "1", "2"]},
    "thalach": {"type": "numeric", "unit": "bpm", "min": 40, "max": 250},
    "exang": {"type": "binary", "levels": ["0", "1"]},
    "oldpeak": {"type": "numeric", "unit": "mm", "min": -5, "max": 10},
    "slope": {"type": "categorical", "levels": ["1", "2", "3"]},
    "ca": {"type": "numeric", "min": 0, "max": 3},
    "thal": {"type": "categorical", "levels": ["3", "6", "7"]},
}
_HEART_COLUMNS = [*_HEART_SCHEMA, "num"]

_WBC_FEATURES = [
    "clump_thickness",
    "uniformity_cell_size",
    "uniformity_cell_shape",
    "marginal_adhesion",
    "single_epithelial_cell_size",
    "bare_nuclei",
    "bland_chromatin",
    "normal_nucleoli",
    "mitoses",
]

_PIMA_SCHEMA = {
    "Pregnancies": {"type": "numeric", "min": 0, "max": 30},
    "Glucose": {"type": "numeric", "unit": "mg/dl", "min": 0, "max": 400},
    "BloodPressure": {"type": "numeric", "unit": "mm Hg", "min": 0, "max": 250},
    "SkinThickness": {"type": "numeric", "unit": "mm", "min": 0, "max": 120},
    "Insulin": {"type": "numeric", "unit": "mu U/ml", "min": 0, "max": 1000},
    "BMI": {"type": "numeric", "unit": "kg/m2", "min": 0, "max": 80},
    "DiabetesPedigreeFunction": {"type": "numeric", "min": 0, "max": 5},
    "Age": {"type": "numeric", "unit": "years", "min": 0, "max": 120},
}

_UCI = "https://archive.ics.uci.edu"

TABULAR_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="heart_cleveland",
        domain="clinical",
        task="binary",
        relpath="tabular/uci_heart_disease/processed.cleveland.data",
        url=f"{_UCI}/ml/machine-learning-databases/heart-disease/processed.cleveland.data",
        checksums={"sha256": ["a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8"]},
        size_bytes=18461,
        description=(
            "UCI heart disease, Cleveland Clinic: 303 patients, 13 features (age, sex, chest "
            "pain type, blood pressure, cholesterol, ECG, exercise test, fluoroscopy, thal); "
            "target num 0-4 (angiographic disease), usually binarised as 'num > 0'. Headerless, "
            "'?' = missing."
        ),
        license="CC BY 4.0",
        citation=(
            "Janosi A, Steinbrunn W, Pfisterer M, Detrano R. Heart Disease. UCI Machine "
            "Learning Repository (1988). doi:10.24432/C52P4X; Detrano R et al. Am J Cardiol "
            "64:304-310 (1989)."
        ),
        reader="tabular",
        reader_options={"columns": _HEART_COLUMNS, "schema": _HEART_SCHEMA, "target": "num > 0"},
    ),
    DatasetSpec(
        name="pima",
        domain="clinical",
        task="binary",
        relpath="tabular/pima-indians-diabetes.data.csv",
        url="https://www.kaggle.com/datasets/uciml/pima-indians-diabetes-database",
        checksums={"sha256": ["7bc6937fc95b5c38ac6d600bbc3ab6bd9f7ee6fde3483a34229ac8f0975a33b3"]},
        size_bytes=23384,
        description=(
            "Pima Indians diabetes (NIDDK): 768 women, 8 features; target Outcome (onset of "
            "diabetes within 5 years). Zeros in Glucose, BloodPressure, SkinThickness, "
            "Insulin and BMI are recorded-as-zero missing values in the original."
        ),
        license="CC0 (Kaggle copy)",
        citation=(
            "Smith JW et al. Using the ADAP learning algorithm to forecast the onset of "
            "diabetes mellitus. Proc Symp Comput Appl Med Care, 261-265 (1988)."
        ),
        reader="tabular",
        reader_options={"schema": _PIMA_SCHEMA, "target": "Outcome"},
        notes="Not downloadable automatically (Kaggle needs a login); use MEDLEARN_DATA_DIR.",
    ),
    DatasetSpec(
        name="breast_cancer_wisconsin",
        domain="clinical",
        task="binary",
        relpath="tabular/breast-cancer-wisconsin.data",
        url=f"{_UCI}/ml/machine-learning-databases/breast-cancer-wisconsin/breast-cancer-wisconsin.data",
        checksums={"sha256": ["402c585309c399237740f635ef9919dc512cca12cbeb20de5e563a4593f22b64"]},
        size_bytes=19889,
        description=(
            "Wisconsin breast cancer (original, Wolberg): 699 fine-needle aspirates, 9 "
            "cytology scores 1-10; class 2 = benign, 4 = malignant (target 'class == 4'). "
            "Sample code numbers repeat, so they are used as patient ids."
        ),
        license="CC BY 4.0",
        citation="Wolberg WH, Mangasarian OL. PNAS 87:9193-9196 (1990).",
        reader="tabular",
        reader_options={
            "columns": ["sample_id", *_WBC_FEATURES, "class"],
            "patient_id": "sample_id",
            "schema": {f: {"type": "numeric", "min": 1, "max": 10} for f in _WBC_FEATURES},
            "target": "class == 4",
        },
    ),
    DatasetSpec(
        name="chronic_kidney_disease",
        domain="clinical",
        task="binary",
        relpath="tabular/chronic_kidney_disease_full.arff",
        url=f"{_UCI}/dataset/336/chronic+kidney+disease",
        checksums={"sha256": ["a5ea96369b8516d725e4f353ad9c6e7e25a1a7db227bc761f59d8e0dfab15797"]},
        size_bytes=47277,
        description=(
            "UCI chronic kidney disease: 400 patients, 24 clinical and laboratory features "
            "(11 numeric, 13 nominal); class ckd (250) / notckd (150), target "
            "\"class == 'ckd'\". ARFF with '?' = missing and a few stray commas."
        ),
        license="CC BY 4.0",
        citation=(
            "Rubini LJ, Soundarapandian P, Eswaran P. Chronic Kidney Disease. UCI Machine "
            "Learning Repository (2015). doi:10.24432/C5G020"
        ),
        reader="tabular",
        reader_options={
            "target": "class == 'ckd'",
            "schema": {
                "sg": {"type": "categorical"},
                "al": {"type": "categorical"},
                "su": {"type": "categorical"},
            },
        },
        notes="The UCI page serves a zip; the shared data directory holds the ARFF inside it.",
    ),
)

for _spec in TABULAR_SPECS:
    register(_spec)
