"""Reading a prediction request's inputs: multipart bodies, uploaded images, JSON rows.

Multipart bodies are split in memory (:class:`_MultipartFiles`); uploads are recognised by name
or content (:func:`_safe_suffix`, :func:`_sniff_suffix`), their image size is checked from the
header before any pixel is decoded (:func:`_check_dimensions`), then they are decoded from memory
or spooled to the request's scratch files (:class:`_Scratch`) and read by the learner
(:func:`_prepare_uploads`). JSON rows become records with :func:`_records_from_rows`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import secrets
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medlearn.serving.service import ServeSettings

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz")
#: Uploads a learner can decode from memory (its ``read_input_bytes`` hook); DICOM and
#: NIfTI are spooled to a file and read with ``read_inputs``.
_MEMORY_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Requests whose uploads total at most this many bytes are decoded on the event loop (a
#: 28-px PNG takes ~0.1 ms); larger ones in a worker thread.
_INLINE_BYTES = 64 * 1024


_LONGEST_FIRST = tuple(sorted(_IMAGE_SUFFIXES, key=len, reverse=True))


def _safe_suffix(filename: str) -> str | None:
    low = (filename or "").lower()
    for suf in _LONGEST_FIRST:
        if low.endswith(suf):
            return suf
    return None


def _sniff_suffix(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if len(data) > 132 and data[128:132] == b"DICM":
        return ".dcm"
    if data[:2] == b"\x1f\x8b":
        return ".nii.gz"
    if len(data) >= 348 and data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return ".nii"
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR chunk (always the first chunk), else ``None``."""
    if len(data) >= 24 and data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _check_dimensions(
    path: Path | None, suffix: str, settings: ServeSettings, data: bytes | None = None
) -> str | None:
    """Image size from the header, before any pixel is decoded; a message when too large.

    ``path`` is a spooled file; without one, ``data`` (a PNG, JPEG or TIFF upload in memory)
    is checked: a PNG's size is read straight from its IHDR chunk, others through Pillow.
    """
    try:
        size = _png_size(data) if path is None and data is not None else None
        if size is not None:
            shape: tuple[int, ...] = tuple(size)
        elif suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(io.BytesIO(data) if path is None else path) as im:
                shape = tuple(im.size)
        elif suffix == ".dcm":
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            shape = (int(ds.Rows), int(ds.Columns), int(getattr(ds, "NumberOfFrames", 1) or 1))
        else:
            import nibabel

            shape = tuple(int(s) for s in nibabel.load(str(path)).shape)
    except Exception as exc:  # noqa: BLE001 - any unreadable header is a bad input
        return f"not a readable image ({type(exc).__name__})"
    if not shape or min(shape) <= 0:
        return "the image is empty"
    if max(shape[:2]) > settings.max_image_side:
        return f"image side {max(shape[:2])} px exceeds the limit of {settings.max_image_side} px"
    if math.prod(shape) > settings.max_image_voxels:
        return (
            f"image has {math.prod(shape)} pixels/voxels; the limit is {settings.max_image_voxels}"
        )
    return None


def _spool_base() -> str | None:
    """Where uploads are spooled: ``$MEDLEARN_SPOOL``, else ``/dev/shm`` (memory: uploads
    never reach a disk, and writing them costs no disk I/O), else the system temp folder."""
    env = os.environ.get("MEDLEARN_SPOOL")
    if env:
        return env
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


class _Scratch:
    """A request's scratch files in the server's spool folder, removed by :meth:`cleanup`.

    Files get a random token in their names, so requests never collide; a folder is made only
    when one is needed (explanations, the CSV fallback), as creating and removing folders
    costs milliseconds on some file systems.
    """

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self._token: str | None = None
        self.files: list[Path] = []
        self._dir: Path | None = None

    @property
    def token(self) -> str:
        if self._token is None:  # drawn on first use: most requests never touch the spool
            self._token = secrets.token_hex(8)
        return self._token

    def file(self, stem: str, suffix: str) -> Path:
        p = self.spool / f"{stem}_{self.token}{suffix}"
        self.files.append(p)
        return p

    def dir(self) -> Path:
        if self._dir is None:
            self._dir = self.spool / f"req_{self.token}"
            self._dir.mkdir(mode=0o700)
        return self._dir

    @property
    def has_dir(self) -> bool:
        return self._dir is not None

    @property
    def used(self) -> bool:
        return bool(self.files) or self._dir is not None

    def cleanup(self) -> None:
        for p in self.files:
            with contextlib.suppress(OSError):
                os.unlink(p)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


class UploadGroup(list):
    """One request's checked uploads, ``(record id, bytes)`` pairs, decoded later by the
    micro-batcher's ``prepare`` (in the model process) rather than on the event loop."""


def _decodes_in_memory(uploads: Sequence[tuple[str, bytes]], learner: Any) -> bool:
    """Whether every upload is a format ``learner`` can decode from memory."""
    if not hasattr(learner, "read_input_bytes"):
        return False
    return all(
        (_safe_suffix(name) or _sniff_suffix(data)) in _MEMORY_SUFFIXES for name, data in uploads
    )


def _plan_uploads(
    uploads: Sequence[tuple[str, bytes]], scratch: _Scratch, learner: Any, settings: ServeSettings
) -> tuple[list[dict[str, str]], dict[str, str], list[str], list[tuple[str, bytes]], bool]:
    """Check the uploads' types and headers without decoding any pixel.

    Returns ``(bad, names, sources, items, in_memory)``: every unusable file as
    ``{"input": "file[i]", "error"}``, the record id → client file name map, the sources
    for ``read_inputs`` (spooled paths, or the record ids when in memory), the
    ``(record id, bytes)`` pairs for ``read_input_bytes``, and whether the learner decodes
    them from memory.
    """
    in_memory = _decodes_in_memory(uploads, learner)
    bad: list[dict[str, str]] = []
    names: dict[str, str] = {}
    sources: list[str] = []
    items: list[tuple[str, bytes]] = []
    for i, (filename, data) in enumerate(uploads):
        label = f"file[{i}]"
        suffix = _safe_suffix(filename) or _sniff_suffix(data)
        if suffix is None:
            bad.append({"input": label, "error": "unsupported file type"})
            continue
        name = f"upload_{i:03d}{suffix}"
        if in_memory:
            source = name
            problem = _check_dimensions(None, suffix, settings, data)
        else:
            p = scratch.file(f"upload_{i:03d}", suffix)
            p.write_bytes(data)
            source = str(p)
            problem = _check_dimensions(p, suffix, settings)
        if problem:
            bad.append({"input": label, "error": problem})
            continue
        names[source] = names[name] = filename or label
        if not in_memory:
            names[Path(source).name] = filename or label
        sources.append(source)
        items.append((name, data))
    return bad, names, sources, items, in_memory


def _read_planned(
    learner: Any, in_memory: bool, sources: Sequence[str], items: Sequence[tuple[str, bytes]]
) -> tuple[list[dict[str, str]], list[Any]]:
    """Read planned uploads with the learner: ``(bad, records)``, bad files named
    ``file[i]`` as the client numbered them (never by their content)."""
    if in_memory:
        records, bad_inputs = learner.read_input_bytes(items)
    else:
        records, bad_inputs = learner.read_inputs(sources)
    bad = []
    for b in bad_inputs:
        src = Path(b.source).name
        label = f"file[{int(src[7:10])}]" if src.startswith("upload_") else "file"
        msg = b.message.replace(str(b.source), label).replace(src, label)
        bad.append({"input": label, "error": msg})
    return bad, records


def _prepare_uploads(
    uploads: Sequence[tuple[str, bytes]], scratch: _Scratch, learner: Any, settings: ServeSettings
) -> tuple[list[dict[str, str]], dict[str, str], list[Any]]:
    """Check the uploads' headers, then read them with the learner.

    PNG/JPEG/TIFF uploads are decoded from memory when the learner has a
    ``read_input_bytes`` hook (nothing touches the disk); otherwise every upload is spooled
    to ``scratch`` and read with ``read_inputs``. Either way a record's id is
    ``upload_<i><suffix>`` (or its spooled path), which the caller maps back to the client's
    file name.

    Returns ``(bad, names, records)``: every unusable file as ``{"input": "file[i]", "error"}``
    (nothing is decoded when any file is bad), the record id → client file name map, and
    the records.
    """
    bad, names, sources, items, in_memory = _plan_uploads(uploads, scratch, learner, settings)
    if bad or not sources:
        return bad, names, []
    bad, records = _read_planned(learner, in_memory, sources, items)
    return bad, names, records


#: ``multipart/form-data; boundary=...`` with an unquoted RFC 2046 boundary (what curl, httpx
#: and browsers send); anything else goes to python-multipart's header parser.
_PLAIN_CTYPE = re.compile(r"multipart/form-data; ?boundary=([0-9A-Za-z'()+_,\-./:=?]{1,70})")


def _plain_boundary(content_type: str) -> bytes | None:
    """The boundary of a plainly written multipart content type, else ``None``."""
    match = _PLAIN_CTYPE.fullmatch(content_type)
    return match[1].encode("latin-1") if match else None


_DISPOSITION = re.compile(rb'form-data; name="([^"\\\r\n]*)"(?:; filename="([^"\\\r\n]*)")?')


def _field_text(raw: bytes) -> str:
    """A header parameter's bytes as text, as Starlette decodes it (UTF-8, else Latin-1)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _plain_parts(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes | None, bytes]] | None:
    """The parts of a plainly laid-out multipart body, or ``None`` to use the full parser.

    "Plain" is what browsers, curl, httpx and requests send: the body opens with the
    boundary line, every part has a ``Content-Disposition: form-data; name="..."[;
    filename="..."]`` header without escapes, and the closing delimiter ends the body.
    Anything else (preamble, odd spacing, quoted escapes, RFC 2231 names, broken framing)
    returns ``None``, and python-multipart parses it (or refuses it) instead.
    """
    opening = b"--" + boundary + b"\r\n"
    if not body.startswith(opening):
        return None
    delimiter = b"\r\n--" + boundary
    pos, parts = len(opening), []
    while True:
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return None
        disposition = None
        for line in body[pos:head_end].split(b"\r\n"):
            key, sep, value = line.partition(b":")
            if not sep or key != key.strip():
                return None
            if key.lower() == b"content-disposition":
                disposition = value.strip()
        match = _DISPOSITION.fullmatch(disposition) if disposition is not None else None
        if match is None:
            return None
        end = body.find(delimiter, head_end + 4)
        if end < 0:
            return None
        parts.append((match[1], match[2], body[head_end + 4 : end]))
        pos = end + len(delimiter)
        if body[pos : pos + 2] == b"--":
            return parts if body[pos + 2 :] in (b"", b"\r\n") else None
        if body[pos : pos + 2] != b"\r\n":
            return None
        pos += 2


class _MultipartFiles:
    """The parts of a multipart body already in memory, with Starlette's form limits.

    Plain bodies (:func:`_plain_parts`) are split directly; any other body goes through
    python-multipart, the parser behind Starlette's ``request.form()``. Either way parts stay
    ``bytes``: no temporary file per upload and no worker-thread hop to fill it.
    """

    def __init__(self, *, max_files: int, max_fields: int, max_part_size: int) -> None:
        self.max_files, self.max_fields, self.max_part_size = max_files, max_fields, max_part_size
        self.parts: list[tuple[str, str | None, bytes]] = []
        self._files = self._fields = 0
        self._header_name = self._header_value = b""
        self._disposition = b""
        self._data: list[bytes] = []

    def parse(
        self, body: bytes, content_type: str, *, plain: bool = True
    ) -> list[tuple[str, str | None, bytes]]:
        """``(field name, file name or None, bytes)`` per part. Raises ValueError if malformed.

        ``plain=False`` always uses python-multipart (tests compare the two).
        """
        boundary = _plain_boundary(content_type)
        if boundary is None:
            from python_multipart.multipart import parse_options_header

            _, params = parse_options_header(content_type)
            boundary = params.get(b"boundary")
        if not boundary:
            raise ValueError("Missing boundary in multipart.")
        found = _plain_parts(body, boundary) if plain else None
        if found is not None:
            for name, filename, data in found:
                self._add(name, filename, data)
            return self.parts
        self._parse_full(body, boundary)
        return self.parts

    def _parse_full(self, body: bytes, boundary: bytes) -> None:
        from python_multipart import MultipartParser

        callbacks = {
            "on_part_begin": self._begin,
            "on_part_data": self._part_data,
            "on_part_end": self._end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_val,
            "on_header_end": self._header_end,
        }
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        try:
            parser.write(body)
            parser.finalize()
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - python-multipart's FormParserError family
            raise ValueError("Invalid multipart data.") from exc

    def _add(self, name: bytes, filename: bytes | None, data: bytes) -> None:
        if filename is not None:
            self._files += 1
            if self._files > self.max_files:
                raise ValueError(f"Too many files. Maximum number of files is {self.max_files}.")
        else:
            self._fields += 1
            if self._fields > self.max_fields:
                raise ValueError(f"Too many fields. Maximum number of fields is {self.max_fields}.")
            if len(data) > self.max_part_size:
                raise ValueError(
                    f"Part exceeded maximum size of {int(self.max_part_size / 1024)}KB."
                )
        text = None if filename is None else _field_text(filename)
        self.parts.append((_field_text(name), text, data))

    def _begin(self) -> None:
        self._disposition, self._data = b"", []

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_val(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data.append(data[start:end])

    def _end(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise ValueError('The Content-Disposition header field "name" must be provided.')
        self._add(options[b"name"], options.get(b"filename"), b"".join(self._data))


def _records_from_rows(
    learner: Any, rows: list[dict[str, Any]], scratch: _Scratch
) -> tuple[list, list]:
    """Feature dicts → records: the learner's ``records_from_rows`` hook, else a temp CSV."""
    if hasattr(learner, "records_from_rows"):
        return learner.records_from_rows(rows)
    import pandas as pd

    csv = scratch.dir() / "records.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return learner.read_inputs([str(csv)])
