"""`medlearn evaluate --data X` reads X alone, even when the run file names a test set."""

from __future__ import annotations

from medlearn.config import validate_config
from medlearn.pipeline import _without_source_options
from medlearn.registry import READERS


def test_options_naming_other_sources_are_dropped_for_evaluate() -> None:
    READERS.add(
        "fake_sources", lambda path, cfg=None: None, run_config=True, source_options=("test",)
    )
    try:
        cfg = validate_config(
            {
                "data": {"path": "a.tar.gz", "options": {"test": "b.tar.gz", "hours": 24}},
                "model": {"name": "simple_cnn"},
            }
        )
        stripped = _without_source_options("fake_sources", cfg)
        assert stripped.data.options == {"hours": 24}
        assert cfg.data.options == {"test": "b.tar.gz", "hours": 24}  # the original is unchanged
        READERS.add("fake_plain", lambda path, cfg=None: None, run_config=True)
        assert _without_source_options("fake_plain", cfg) is cfg
    finally:
        READERS.unregister("fake_sources")
        READERS.unregister("fake_plain")
