"""The prediction path: request inputs → records → predictions (or explanations) → answer.

:class:`PredictPath` holds what the predict route and CDS Hooks share: model lookup, reading
a multipart or JSON body into records, running them through the model's micro-batcher (or the
explainer), adding model, uncertainty and calibration fields, and shadow scoring.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from medlearn.serving.service import (
    ApiError,
    LoadedModel,
    ServeSettings,
    Service,
    _inline_files,
    bad_records_error,
    bad_uploads_error,
    read_upload_group,
)
from medlearn.serving.uploads import (
    _INLINE_BYTES,
    UploadGroup,
    _decodes_in_memory,
    _MultipartFiles,
    _plan_uploads,
    _prepare_uploads,
    _records_from_rows,
    _Scratch,
)


class RawRows(list):
    """JSON feature rows standing in for records that were made in the micro-batcher."""


class RecordsIn(BaseModel):
    """JSON input for record (tabular) models: one dict of feature values per patient."""

    records: list[dict[str, Any]] = Field(..., min_length=1)


def _uncertainty(row: dict[str, Any]) -> dict[str, Any] | None:
    probs = row.get("probabilities")
    if not isinstance(probs, dict) or len(probs) < 2:
        return None
    ps = [min(max(float(p), 1e-12), 1.0) for p in probs.values()]
    entropy = -sum(p * math.log(p) for p in ps) / math.log(len(ps))
    return {
        "entropy": round(entropy, 4),
        "method": "normalised predictive entropy of the calibrated probabilities "
        "(0 = certain, 1 = uniform)",
    }


class FastJSONResponse(JSONResponse):
    """:class:`JSONResponse` encoded with orjson (the prediction answers' hot path).

    Same JSON as the json module gives for what predictions hold (str, numbers, bools,
    None, lists and dicts, non-string dict keys written as strings); NumPy scalars and
    arrays are written as numbers and lists.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def _summary(rows: Sequence[dict[str, Any]]) -> str:
    out = []
    for r in rows[:50]:
        item: dict[str, Any] = {"prediction": r.get("prediction")}
        probs = r.get("probabilities")
        if isinstance(probs, dict) and r.get("prediction") in probs:
            item["p"] = round(float(probs[r["prediction"]]), 3)
        out.append(item)
    text = orjson.dumps({"n": len(rows), "rows": out}, default=str).decode()
    return text[:2000]


_FORMAT = re.compile(r"^(json|fhir)$")
_PATIENT = re.compile(r"^Patient/[A-Za-z0-9\-\.]{1,64}$")
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


def _predict_query(request: Request) -> tuple[str | None, bool, str, str | None]:
    """``(version, explain, format, patient)`` from the predict query, validated.

    Raises:
        ApiError: 422 naming the parameter when a value is not allowed.
    """
    if not request.scope.get("query_string"):  # the usual call: nothing to parse
        return None, False, "json", None
    q = request.query_params
    explain_text = q.get("explain")
    if explain_text is None:
        explain = False
    elif explain_text.lower() in _TRUE:
        explain = True
    elif explain_text.lower() in _FALSE:
        explain = False
    else:
        raise ApiError(422, "Query parameter 'explain' must be true or false.")
    fmt = q.get("format", "json")
    if not _FORMAT.fullmatch(fmt):
        raise ApiError(422, "Query parameter 'format' must be 'json' or 'fhir'.")
    patient = q.get("patient")
    if patient is not None and not _PATIENT.fullmatch(patient):
        raise ApiError(
            422,
            "Query parameter 'patient' must be a FHIR reference 'Patient/<id>' "
            "(letters, digits, '-' and '.'; at most 64).",
        )
    return q.get("version"), explain, fmt, patient


def _calibration_name(manifest: dict[str, Any]) -> str:
    cal = manifest.get("calibration")
    if isinstance(cal, dict):
        return str(cal.get("method") or cal.get("name") or "calibrated")
    return str(cal) if cal else "none"


PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One or more images (PNG, JPEG, TIFF, DICOM, "
                            "NIfTI); several files make a batch.",
                        }
                    },
                    "required": ["file"],
                }
            },
            "application/json": {"schema": RecordsIn.model_json_schema()},
        },
    }
}

PREDICT_PARAMS: list[dict[str, Any]] = [
    {
        "name": "version",
        "in": "query",
        "required": False,
        "description": "A version or alias (default production)",
        "schema": {"type": "string"},
    },
    {
        "name": "explain",
        "in": "query",
        "required": False,
        "description": "Add the explanation (Grad-CAM PNG, SHAP)",
        "schema": {"type": "boolean", "default": False},
    },
    {
        "name": "format",
        "in": "query",
        "required": False,
        "description": "json or fhir",
        "schema": {"type": "string", "pattern": _FORMAT.pattern, "default": "json"},
    },
    {
        "name": "patient",
        "in": "query",
        "required": False,
        "description": "FHIR subject reference for format=fhir (never logged)",
        "schema": {"type": "string", "pattern": _PATIENT.pattern},
    },
]


class PredictPath:
    """The predict route's steps, bound to the service.

    Args:
        svc: the server's :class:`Service`.
    """

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.settings: ServeSettings = svc.settings

    def resolve(self, name: str, version: str | None, request: Request) -> LoadedModel:
        """The loaded model of ``name`` (``name@ref`` or ``version``); noted in the audit row."""
        ref = version
        if "@" in name:
            name, ref = name.split("@", 1)
        info = self.svc.resolve(name, ref)
        request.state.audit.update(model=info.name, version=info.version)
        return self.svc.model(info)

    async def aresolve(self, name: str, version: str | None, request: Request) -> LoadedModel:
        """:meth:`resolve` inline when cached and loaded, else in a worker thread."""
        ref = version
        base = name
        if "@" in name:
            base, ref = name.split("@", 1)
        hit = self.svc.resolved(base, ref)
        if hit is not None:
            request.state.audit.update(model=hit.info.name, version=hit.info.version)
            return hit
        return await run_in_threadpool(self.resolve, name, version, request)

    async def read_uploads(
        self, m: LoadedModel, request: Request, ctype: str, scratch: _Scratch, *, raw: bool
    ) -> tuple[dict[str, str], list[Any]]:
        """Multipart files → records (and the record id → client file name map).

        With ``raw`` and small in-memory images, only the files' types and headers are
        checked here, and an :class:`UploadGroup` of the files stands in for the records:
        the model process decodes them with the rest of its micro-batch.
        """
        body = await request.body()
        try:
            parts = _MultipartFiles(
                max_files=self.settings.max_files,
                max_fields=20,
                max_part_size=self.settings.max_request_bytes,
            ).parse(body, ctype)
        except ValueError as exc:
            raise ApiError(400, f"Malformed multipart body: {exc}") from None
        uploads = [
            (fname or "", data)
            for field, fname, data in parts
            if field == "file" and fname is not None
        ]
        if not uploads:
            raise ApiError(
                422,
                "No file in the form field 'file'.",
                hint="Send the image as multipart form field 'file' (curl -F file=@image.png).",
            )
        digest = hashlib.sha256()
        for _, data in uploads:
            digest.update(hashlib.sha256(data).digest())
        request.state.audit["input_sha256"] = digest.hexdigest()
        args = (uploads, scratch, m.learner, self.settings)
        small = sum(len(d) for _, d in uploads) <= _INLINE_BYTES
        in_memory = small and _decodes_in_memory(uploads, m.learner)
        if in_memory and raw:
            bad, names, _, items, _ = _plan_uploads(*args)  # headers only; no pixel decoded
            if bad:
                raise bad_uploads_error(bad, len(uploads))
            return names, UploadGroup(items)
        if in_memory:
            bad, names, records = _prepare_uploads(*args)  # small images: no thread hop
        else:  # spooling, header checks and decoding in one worker-thread hop
            bad, names, records = await anyio.to_thread.run_sync(
                _prepare_uploads, *args, limiter=self.svc.prep_limiter
            )
        if bad:
            raise bad_uploads_error(bad, len(uploads))
        return names, records

    async def read_json(self, m: LoadedModel, request: Request) -> list[dict[str, Any]]:
        """A JSON ``{"records": [...]}`` body, validated, hashed for the audit row and checked
        against the model's input kind and the record limit."""
        try:
            body = RecordsIn.model_validate_json(await request.body())
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError
            raise ApiError(
                422,
                "The body must be multipart with field 'file', or JSON "
                '{"records": [{feature: value, ...}]}.',
                details=str(exc)[:500],
            ) from None
        canon = json.dumps(body.records, sort_keys=True, separators=(",", ":"))
        request.state.audit["input_sha256"] = hashlib.sha256(canon.encode()).hexdigest()
        if (m.manifest.get("input") or {}).get("kind") == "image":
            raise ApiError(
                415,
                f"Model {m.info.name!r} takes images, not JSON records.",
                hint="Upload the image as multipart form field 'file'.",
            )
        if len(body.records) > self.settings.max_records:
            raise ApiError(
                413,
                f"{len(body.records)} records exceed the limit of "
                f"{self.settings.max_records} per request.",
            )
        return body.records

    async def read_records(
        self, m: LoadedModel, rows: list[dict[str, Any]], scratch: _Scratch
    ) -> list[Any]:
        """JSON rows → records (in a worker thread), or 422 listing every bad record."""
        records, bad_inputs = await run_in_threadpool(_records_from_rows, m.learner, rows, scratch)
        if bad_inputs:
            raise bad_records_error(bad_inputs)
        return records

    async def predict_rows(
        self, m: LoadedModel, request: Request, explain: bool
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        """Read the body, predict (or explain) and name each row's input as the client did.

        JSON rows for a model whose batcher can prepare them are checked in the batcher,
        together with the other requests of their micro-batch; the records returned for the
        shadow model are then the raw rows (:class:`RawRows`).
        """
        ctype = request.headers.get("content-type", "")
        scratch = _Scratch(self.svc.spool)
        try:
            names: dict[str, str] = {}
            raw: list[Any] | None = None  # inputs the batcher turns into records
            if ctype.startswith("multipart/form-data"):
                remote = m.process is not None and not explain
                names, records = await self.read_uploads(m, request, ctype, scratch, raw=remote)
                if isinstance(records, UploadGroup):
                    raw = records
            else:
                rows_in = await self.read_json(m, request)
                if explain or not hasattr(m.learner, "records_from_row_groups"):
                    records = await self.read_records(m, rows_in, scratch)
                else:
                    raw, records = rows_in, RawRows(rows_in)
            if explain:
                rows = await run_in_threadpool(self.explain_rows, m, records, scratch.dir())
            elif raw is not None:
                rows = await m.batcher.run(raw, raw=True)
            else:
                rows = await m.batcher.run(records)
            for r in rows:
                src = str(r.get("input", ""))
                name = names.get(src)
                r["input"] = name if name is not None else names.get(Path(src).name, src)
        finally:
            if scratch.has_dir:
                await run_in_threadpool(scratch.cleanup)
            elif scratch.used:
                scratch.cleanup()  # unlinking a few spooled files
        return rows, records

    def explain_rows(self, m: LoadedModel, records: list[Any], tmp: Path) -> list[dict[str, Any]]:
        from medlearn.pipeline import predict_records

        exp_dir, out_dir = tmp / "explain", tmp / "out"
        with m.explain_lock:
            rows = predict_records(
                m.learner, m.manifest, records, explain_dir=exp_dir, output_dir=out_dir
            )
        self.svc.m_predictions.labels(m.info.name, m.info.version).inc(len(records))
        self.svc.drift.observe(
            m.info.name, m.info.version, m.reference, [r["input"] for r in records]
        )
        for r in rows:
            _inline_files(r, out_dir)
            exp = r.get("explanation")
            if isinstance(exp, str) and Path(exp).is_file():
                r["explanation"] = {
                    "method": (m.manifest.get("explain") or {}).get("method", "explanation"),
                    "media_type": "image/png",
                    "base64": base64.b64encode(Path(exp).read_bytes()).decode(),
                }
        return rows

    def finish(self, m: LoadedModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows:
            r["model"] = {"name": m.info.name, "version": m.info.version}
            unc = _uncertainty(r)
            if unc is not None:
                r["uncertainty"] = unc
            if isinstance(r.get("probabilities"), dict):
                r["calibration"] = _calibration_name(m.manifest)
        return rows

    def _records_for(self, cm: LoadedModel, records: list[Any]) -> list[Any]:
        """Records for the shadow model ``cm`` when the batcher made the served model's."""
        if isinstance(records, UploadGroup):
            got = read_upload_group(cm.learner, records)
            if isinstance(got, ApiError):
                raise got
            return got
        if isinstance(records, RawRows):
            scratch = _Scratch(self.svc.spool)
            try:
                recs, bad_rows = _records_from_rows(cm.learner, list(records), scratch)
            finally:
                scratch.cleanup()
            if bad_rows:
                raise bad_records_error(bad_rows)
            return recs
        return records

    def shadow(self, m: LoadedModel, records: list[Any], rows: list[dict[str, Any]]) -> None:
        if not self.settings.shadow:
            return
        cand = self.svc.aliases(m.info.name).get("shadow")
        if not cand or cand == m.info.version:
            return

        def score() -> list[dict[str, Any]]:
            cm = self.svc.model(self.svc.resolve(m.info.name, cand))
            from medlearn.pipeline import predict_records

            return predict_records(cm.learner, cm.manifest, self._records_for(cm, records))

        self.svc.shadow.submit(m.info.name, m.info.version, cand, score, rows)
