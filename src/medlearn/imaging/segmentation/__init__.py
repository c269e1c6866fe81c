"""Medical image segmentation (2-D and 3-D) and lesion detection with MONAI networks.

Importing this package registers the ``segmentation`` reader, learner and task handler, the
``unet``, ``basic_unet``, ``segresnet`` and ``dynunet`` models and the segmentation catalog
entries. See ``docs/segmentation.md``.
"""

from __future__ import annotations

from medlearn.imaging.segmentation import _catalog, learner, models, readers, task  # noqa: F401
from medlearn.imaging.segmentation.learner import SegmentationLearner
from medlearn.imaging.segmentation.metrics import case_metrics, instances_from_mask, match_lesions
from medlearn.imaging.segmentation.phantoms import make_lesion_phantom, write_phantom_dataset
from medlearn.imaging.segmentation.readers import load_volume, read_segmentation
from medlearn.imaging.segmentation.task import SegmentationTask

__all__ = [
    "SegmentationLearner",
    "SegmentationTask",
    "case_metrics",
    "instances_from_mask",
    "load_volume",
    "make_lesion_phantom",
    "match_lesions",
    "read_segmentation",
    "write_phantom_dataset",
]
