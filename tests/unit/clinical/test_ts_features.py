"""TimeSeriesFeaturizer: binning, mask, delta, normalisation, statics, summary, event view."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from medlearn.clinical.timeseries import SUMMARY_STATS, TimeSeriesFeaturizer
from medlearn.data import make_record


def _rec(i: int, events: list[tuple[float, str, float]], static: dict, target: int = 0):
    t = np.array([e[0] for e in events], dtype=float)
    return make_record(
        f"s/{i}",
        {
            "events": {
                "time": t,
                "code": np.array([e[1] for e in events], dtype=str),
                "value": np.array([e[2] for e in events], dtype=float),
                "text": None,
            },
            "static": static,
        },
        target,
    )


def _records() -> list:
    return [
        _rec(
            0,
            [(0.5, "HR", 80.0), (0.9, "HR", 100.0), (3.2, "Temp", 37.0), (5.0, "HR", 400.0)],
            {"Age": 50.0, "Gender": "female"},
        ),
        _rec(
            1,
            [(1.0, "HR", 60.0), (2.0, "Temp", 39.0), (7.9, "Zzz", 1.0)],
            {"Age": None, "Gender": "male"},
            1,
        ),
        _rec(2, [], {"Age": 70.0, "Gender": None}),
    ]


def test_binned_view_mask_delta_and_clip() -> None:
    recs = _records()
    f = TimeSeriesFeaturizer(hours=8, bin_hours=2, variables=["HR", "Temp"], max_events=3)
    out = f.fit(recs).transform(recs)
    assert f.n_bins == 4 and out["values"].shape == (3, 4, 2)
    m = out["mask"]
    assert m[0, :, 0].tolist() == [1, 0, 1, 0]  # HR in bins 0 and 2 (5.0 h)
    assert m[0, :, 1].tolist() == [0, 1, 0, 0]
    # last value in bin 0 is 100 (not 80); 400 is clipped to 250
    mean, std = f.mean[0], f.std[0]
    assert out["values"][0, 0, 0] == pytest.approx((100 - mean) / std, rel=1e-5)
    assert out["values"][0, 2, 0] == pytest.approx((250 - mean) / std, rel=1e-5)
    assert f.last_clipped == 1
    np.testing.assert_allclose(np.mean([80, 100, 250, 60]), mean)
    # delta: hours from the last observation to the bin end; capped at the window
    np.testing.assert_allclose(out["delta"][0, :, 0], [2 - 0.9, 4 - 0.9, 6 - 5.0, 8 - 5.0])
    assert np.all(out["delta"][2] == 8)
    assert np.all(out["values"][m == 0] == 0)


def test_statics_summary_and_event_view() -> None:
    recs = _records()
    f = TimeSeriesFeaturizer(hours=8, bin_hours=2, max_events=3).fit(recs)
    assert f.variables == ["HR", "Temp", "Zzz"]  # default: every numeric code in train
    out = f.transform(recs)
    assert f.static_names == [
        "Age",
        "Age_missing",
        "Gender=female",
        "Gender=male",
        "Gender_missing",
    ]
    s = out["static"]
    assert s[1, 1] == 1 and s[1, 0] == 0 and s[0, 2] == 1 and s[2, 4] == 1
    assert s[0, 0] == pytest.approx(-1.0) and s[2, 0] == pytest.approx(1.0)
    summ = out["summary"]
    assert summ.shape == (3, 3 * len(SUMMARY_STATS) + 5) and len(f.summary_names) == summ.shape[1]
    hr = dict(zip(SUMMARY_STATS, summ[0, : len(SUMMARY_STATS)], strict=True))
    np.testing.assert_allclose(
        [hr[k] for k in ("first", "last", "min", "max", "mean", "std", "count")],
        [80, 250, 80, 250, np.mean([80, 100, 250]), np.std([80, 100, 250]), 3],
        rtol=1e-5,
    )
    assert hr["hours_since_last"] == pytest.approx(3.0)
    # window halves at 4 h: 80, 100 early; 250 (clipped) late; trend by least squares
    assert hr["sum"] == pytest.approx(430) and hr["hours_first"] == pytest.approx(0.5)
    assert hr["mean_early"] == pytest.approx(90) and hr["mean_late"] == pytest.approx(250)
    assert hr["min_late"] == pytest.approx(250) and hr["max_late"] == pytest.approx(250)
    slope = np.polyfit([0.5, 0.9, 5.0], [80, 100, 250], 1)[0]
    assert hr["slope"] == pytest.approx(slope, rel=1e-4)
    temp = dict(
        zip(SUMMARY_STATS, summ[1, len(SUMMARY_STATS) : 2 * len(SUMMARY_STATS)], strict=True)
    )
    assert temp["mean_early"] == pytest.approx(39) and np.isnan(temp["mean_late"])
    assert np.isnan(temp["slope"])  # one observation: no trend
    assert np.isnan(summ[2, 0]) and summ[2, 6] == 0  # never observed: NaN stats, count 0
    # event view: the last 3 events of record 0, time-ordered, 1-based variable index
    assert out["event_time"][0].tolist() == pytest.approx([0.9, 3.2, 5.0])
    assert out["event_var"][0].tolist() == [1, 2, 1]
    assert out["event_mask"][2].sum() == 0 and out["event_var"][2].sum() == 0
    assert out["event_mask"][1].tolist() == [1, 1, 1]


def test_fit_on_train_only_and_json_round_trip() -> None:
    recs = _records()
    f = TimeSeriesFeaturizer(hours=8, bin_hours=2, max_events=4).fit(recs[:1])
    assert f.variables == ["HR", "Temp"]  # test-only variables are not learnt
    d = json.loads(json.dumps(f.to_dict()))
    g = TimeSeriesFeaturizer.from_dict(d)
    assert g.to_dict() == f.to_dict()
    a, b = f.transform(recs), g.transform(recs)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(RuntimeError):
        TimeSeriesFeaturizer().transform(recs)


def test_vectorised_speed() -> None:
    rng = np.random.default_rng(0)
    names = [f"V{i}" for i in range(36)]
    recs = []
    for i in range(1000):
        n = 200
        ev = list(
            zip(
                np.sort(rng.uniform(0, 48, n)),
                rng.choice(names, n),
                rng.normal(size=n),
                strict=True,
            )
        )
        recs.append(_rec(i, ev, {"Age": float(rng.integers(20, 90))}))
    start = time.perf_counter()
    out = TimeSeriesFeaturizer().fit(recs).transform(recs)
    elapsed = time.perf_counter() - start
    assert out["values"].shape == (1000, 48, 36)
    assert out["mask"].sum() <= 1000 * 200
    assert elapsed < 20  # 200k events; seconds, not minutes (shared CPU: generous bound)
