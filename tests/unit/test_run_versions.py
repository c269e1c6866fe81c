"""The versions recorded in every run match the installed libraries, without importing them."""

from __future__ import annotations

import json


def test_versions_match_the_modules_and_do_not_import_lightning_or_monai(fresh_python) -> None:
    code = (
        "import json, sys\n"
        "from medlearn.pipeline import _versions\n"
        "v = _versions()\n"
        "loaded = [m for m in ('lightning', 'monai') if m in sys.modules]\n"
        "print(json.dumps({'v': v, 'loaded': loaded}))\n"
    )
    doc = json.loads(fresh_python(code))
    assert doc["loaded"] == []  # reading a version must not pay for importing the package
    import lightning
    import monai
    import sklearn
    import torch

    v = doc["v"]
    assert v["lightning"] == lightning.__version__
    assert v["monai"] == monai.__version__
    assert v["scikit-learn"] == sklearn.__version__
    assert v["torch"] == str(torch.__version__)
