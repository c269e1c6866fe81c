"""The dataset catalog: specs, lookup order, checksums, downloads, load, and `medlearn data`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlearn import catalog
from medlearn.catalog import DatasetSpec
from medlearn.data import LoadedData, make_record
from medlearn.errors import (
    ChecksumError,
    ConfigError,
    DataNotFoundError,
    DataValidationError,
    UnknownComponentError,
)
from medlearn.registry import DATASETS, READERS

NAME = "tiny-test-set"
CONTENT = b"label\n0\n1\n1\n"


def _reader(path: Path, *, offset: int = 0) -> LoadedData:
    """A domain-free test reader: one record per line after the header."""
    lines = Path(path).read_text().split()[1:]
    records = [make_record(f"r{i}", None, int(v) + offset) for i, v in enumerate(lines)]
    return LoadedData(records=records, source=str(path))


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A data dir holding the file, an empty cache dir, and the 'official' source file."""
    data, cache, source = tmp_path / "data", tmp_path / "cache", tmp_path / "source"
    for d in (data / "tiny", cache, source):
        d.mkdir(parents=True)
    (data / "tiny" / "tiny.csv").write_bytes(CONTENT)
    (source / "tiny.csv").write_bytes(CONTENT)
    monkeypatch.setenv(catalog.DATA_ENV, str(data))
    monkeypatch.setenv(catalog.CACHE_ENV, str(cache))
    return {"data": data, "cache": cache, "source": source}


def _spec(source: Path, **override) -> DatasetSpec:
    fields = {
        "name": NAME,
        "domain": "testing",
        "task": "binary",
        "relpath": "tiny/tiny.csv",
        "url": (source / "tiny.csv").as_uri(),
        "checksums": {"sha256": [hashlib.sha256(CONTENT).hexdigest()]},
        "size_bytes": len(CONTENT),
        "classes": ["no", "yes"],
        "reader": "tiny-test-reader",
        "reader_options": {"offset": 0},
    }
    fields.update(override)
    return DatasetSpec(**fields)


@pytest.fixture
def register(dirs: dict[str, Path]) -> Iterator[callable]:
    """Register a spec (and the test reader) for one test; unregister afterwards."""
    READERS.add("tiny-test-reader", _reader)

    def add(**override) -> DatasetSpec:
        DATASETS.unregister(NAME)
        return catalog.register(_spec(dirs["source"], **override))

    yield add
    DATASETS.unregister(NAME)
    READERS.unregister("tiny-test-reader")


# --- DatasetSpec -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"relpath": "/abs/file.npz"}, "relative POSIX path"),
        ({"relpath": "../up.npz"}, "relative POSIX path"),
        ({"checksums": {"sha1": ["0" * 40]}}, "unknown algorithm 'sha1'"),
        ({"checksums": {"md5": ["abc"]}}, "32 hex characters"),
        ({"classes": ["a", "a"]}, "repeat a name"),
        ({"name": ""}, "non-empty name"),
    ],
)
def test_spec_validation(tmp_path: Path, override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _spec(tmp_path, **override)


def test_spec_normalises_and_serialises(tmp_path: Path) -> None:
    spec = _spec(tmp_path, checksums={"md5": "A" * 32}, classes=["no", "yes"])
    assert spec.checksums == {"md5": ("a" * 32,)}
    assert spec.classes == ("no", "yes")
    as_dict = spec.to_dict()
    assert as_dict["checksums"] == {"md5": ["a" * 32]} and as_dict["classes"] == ["no", "yes"]
    json.dumps(as_dict)


def test_medmnist_specs_are_registered_with_official_sources() -> None:
    pytest.importorskip("medlearn.imaging")
    names = [
        n for n in DATASETS.list(domain="imaging") if DATASETS.meta(n)["task"] != "segmentation"
    ]
    assert {"pneumoniamnist", "breastmnist", "dermamnist", "bloodmnist", "organamnist"} <= set(
        names
    )
    assert "chestmnist" not in names  # multi-label: not a 2-class/multiclass entry
    sizes = {"pneumoniamnist": 2, "breastmnist": 2, "dermamnist": 7, "bloodmnist": 8}
    for name in names:
        spec = catalog.get_spec(name)
        assert spec.url and spec.url.startswith("https://zenodo.org/records/10519652/files/")
        assert spec.checksums["md5"] and spec.relpath == f"medmnist/{name}.npz"
        assert spec.reader == "imaging" and spec.citation and spec.license
        if name in sizes:
            assert len(spec.classes) == sizes[name]
    pneumonia = catalog.get_spec("pneumoniamnist")
    assert pneumonia.checksums["md5"] == ("28209eda62fecd6e6a2d98b1501bb15f",)
    assert pneumonia.checksums["sha256"] == (
        "a554d2332488d3ddc075125e66a1af77ec379fd2bafc09108ab95a37e2bd9c26",
    )
    assert "Not in the shared data" in catalog.get_spec("breastmnist").notes


# --- resolve ---------------------------------------------------------------------------------


def test_resolve_from_data_dir_is_verified_and_memoised(
    register, dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    register()
    expected = dirs["data"] / "tiny" / "tiny.csv"
    assert catalog.resolve(NAME, download=False) == expected

    def no_hashing(*args, **kwargs):
        raise AssertionError("an unchanged, verified file must not be hashed again")

    monkeypatch.setattr(catalog.hashlib, "new", no_hashing)
    assert catalog.resolve(NAME, download=False) == expected


def test_checksum_mismatch_names_file_expected_and_got(register, dirs) -> None:
    spec = register()
    target = dirs["data"] / "tiny" / "tiny.csv"
    target.write_bytes(b"label\n0\n")  # new size and mtime: hashed again
    with pytest.raises(ChecksumError) as err:
        catalog.resolve(NAME)
    text = str(err.value)
    assert str(target) in text
    assert spec.checksums["sha256"][0] in text
    assert hashlib.sha256(b"label\n0\n").hexdigest() in text
    assert f"medlearn data fetch {NAME}" in (err.value.hint or "")


def test_any_listed_digest_is_accepted(register, dirs) -> None:
    register(checksums={"sha256": ["0" * 64], "md5": [hashlib.md5(CONTENT).hexdigest()]})
    assert catalog.resolve(NAME, download=False).is_file()


def test_download_into_cache_verifies_and_leaves_no_temp_files(register, dirs, monkeypatch) -> None:
    monkeypatch.delenv(catalog.DATA_ENV)
    register()
    path = catalog.fetch(NAME, progress=False)
    assert path == dirs["cache"] / "tiny" / "tiny.csv"
    assert path.read_bytes() == CONTENT
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.csv"]
    (dirs["source"] / "tiny.csv").unlink()  # the cached copy is used from now on
    assert catalog.resolve(NAME, download=False) == path


def test_download_checksum_mismatch_deletes_the_file(register, dirs, monkeypatch) -> None:
    monkeypatch.delenv(catalog.DATA_ENV)
    register(checksums={"sha256": ["1" * 64]})
    with pytest.raises(ChecksumError, match="download deleted"):
        catalog.resolve(NAME, progress=False)
    assert list((dirs["cache"] / "tiny").iterdir()) == []


def test_download_failure_is_data_not_found(register, dirs, monkeypatch) -> None:
    monkeypatch.delenv(catalog.DATA_ENV)
    register(url=(dirs["source"] / "gone.csv").as_uri())
    with pytest.raises(DataNotFoundError, match="could not be downloaded"):
        catalog.resolve(NAME, progress=False)
    assert list((dirs["cache"] / "tiny").iterdir()) == []


def test_missing_dataset_says_what_was_tried_and_how_to_fix(register, dirs) -> None:
    register(relpath="tiny/absent.csv")
    with pytest.raises(DataNotFoundError) as err:
        catalog.resolve(NAME, download=False)
    text = str(err.value)
    assert f"MEDLEARN_DATA_DIR: {dirs['data'] / 'tiny' / 'absent.csv'}" in text
    assert f"cache: {dirs['cache'] / 'tiny' / 'absent.csv'}" in text
    assert "Set MEDLEARN_DATA_DIR" in text and f"medlearn data fetch {NAME}" in text


def test_unknown_dataset_suggests_names(register) -> None:
    register()
    with pytest.raises(UnknownComponentError, match="Did you mean 'tiny-test-set'"):
        catalog.resolve("tiny-test-sett")


# --- info and load ---------------------------------------------------------------------------


def test_info_reports_status(register, dirs) -> None:
    register()
    fields = catalog.info(NAME)
    assert fields["status"] == "verified"
    assert fields["local_path"] == str(dirs["data"] / "tiny" / "tiny.csv")
    assert fields["classes"] == ["no", "yes"] and fields["reader"] == "tiny-test-reader"
    assert catalog.info(NAME, verify=False)["status"] == "found"
    register(checksums={"md5": ["2" * 32]})
    assert catalog.info(NAME)["status"] == "checksum mismatch"
    register(relpath="tiny/absent.csv")
    assert catalog.info(NAME)["status"] == "missing"


def test_load_uses_reader_options_and_spec_classes(register) -> None:
    register()
    data = catalog.load(NAME)
    assert data.classes == ["no", "yes"] and data.source == NAME
    assert [r["target"] for r in data.records] == [0, 1, 1]
    with pytest.raises(DataValidationError, match="outside the 2 classes"):
        catalog.load(NAME, offset=1)


# --- `medlearn data list | info | fetch` -----------------------------------------------------


def test_cli_list_info_fetch(register, dirs, monkeypatch) -> None:
    from medlearn.cli.data import app

    register()
    runner = CliRunner()
    monkeypatch.setenv("COLUMNS", "200")
    listed = runner.invoke(app, ["list", "--domain", "testing"])
    assert listed.exit_code == 0, listed.output
    assert NAME in listed.output and "yes (MEDLEARN_DATA_DIR)" in listed.output

    shown = runner.invoke(app, ["info", NAME, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["status"] == "verified"
    table = runner.invoke(app, ["info", NAME])
    assert "verified" in table.output and "tiny/tiny.csv" in table.output

    fetched = runner.invoke(app, ["fetch", NAME, "--quiet"])
    assert fetched.exit_code == 0 and "checksum verified" in fetched.output

    unknown = runner.invoke(app, ["info", "no-such-set"])
    assert isinstance(unknown.exception, UnknownComponentError)
