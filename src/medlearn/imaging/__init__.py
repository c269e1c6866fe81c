"""Medical imaging: readers (MedMNIST, image folders, DICOM, NIfTI), models, the learner."""

from __future__ import annotations

from medlearn.imaging import readers  # noqa: F401  (registers the reader and catalog entries)

__all__: list[str] = []
