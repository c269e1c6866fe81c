"""Medical imaging: readers (MedMNIST, image folders, DICOM, NIfTI), models, the learner."""

from __future__ import annotations

from medlearn.imaging import (  # noqa: F401  (registration)
    models,
    readers,
    segmentation,
    tasks,
    transforms,
)
from medlearn.imaging.models import create_model
from medlearn.imaging.readers import load_image, read_imaging
from medlearn.imaging.tasks import ImageClassifier, ImagePreprocessor

__all__ = ["ImageClassifier", "ImagePreprocessor", "create_model", "load_image", "read_imaging"]
