"""Module attributes imported on first use."""

from __future__ import annotations

import pytest


def test_lightning_modules_import_on_first_use_under_their_old_names(fresh_python) -> None:
    code = (
        "import sys\n"
        "import medlearn.clinical.tabular as tab, medlearn.imaging.tasks as cls\n"
        "import medlearn.imaging.segmentation.learner as seg\n"
        "import medlearn.clinical._survival_models as surv, medlearn.clinical._ts_models as ts\n"
        "before = 'lightning' in sys.modules\n"
        "from medlearn.clinical.tabular import TabularMLPModule\n"
        "from lightning.pytorch import LightningModule\n"
        "classes = [TabularMLPModule, cls.ClassificationModule, seg.SegmentationModule,\n"
        "           surv.DeepSurvModule, ts.TimeSeriesModule]\n"
        "print(before, all(issubclass(c, LightningModule) for c in classes),\n"
        "      'TabularMLPModule' in vars(tab))\n"
    )
    assert fresh_python(code).split() == ["False", "True", "True"]  # then kept in the namespace


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    import medlearn.imaging.tasks as tasks

    with pytest.raises(AttributeError, match="has no attribute 'NoSuchModule'"):
        tasks.NoSuchModule  # noqa: B018
