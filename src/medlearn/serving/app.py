"""The FastAPI application: prediction, FHIR, CDS Hooks, registry, audit, metrics, web page.

Build it with :func:`create_app`; ``medlearn serve`` runs it under uvicorn. Security is on by
default: every ``/v1`` and ``/cds-services`` endpoint needs an API key (``Authorization:
Bearer mlk_...``) of an allowed role, and every such request — refused ones included — gets
one audit row, committed before the response leaves. Logs carry key ids, model names,
status codes and latencies only, never inputs, file names or patient references.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from medlearn.errors import MedlearnError
from medlearn.serving.audit import AuditEntry, export_rows, verify_chain
from medlearn.serving.auth import Principal
from medlearn.serving.predict import (
    PREDICT_BODY,
    PREDICT_PARAMS,
    FastJSONResponse,
    PredictPath,
    _predict_query,
    _summary,
)
from medlearn.serving.predict import RecordsIn as RecordsIn
from medlearn.serving.service import ApiError, ServeSettings, Service
from medlearn.serving.service import LoadedModel as LoadedModel
from medlearn.serving.uploads import _MultipartFiles as _MultipartFiles
from medlearn.serving.uploads import _plain_parts as _plain_parts
from medlearn.serving.uploads import _records_from_rows as _records_from_rows
from medlearn.serving.uploads import _Scratch as _Scratch

# ``X as X`` imports above re-export names that moved to uploads/service/predict and that
# code and tests still import from here.
__all__ = ["ServeSettings", "create_app"]

log = logging.getLogger("medlearn.serving")
_WEB = Path(__file__).parent / "web"
_AUDITED = ("/v1/", "/cds-services")


class AliasIn(BaseModel):
    """Body of an alias move."""

    version: str = Field(..., min_length=1, max_length=64)


def _json_error(status: int, message: str, hint: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": status, "message": message}
    if hint:
        body["hint"] = hint
    return JSONResponse({"error": body}, status_code=status)


def _no_request_telemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry request spans, metrics and logs switched off.

    Spans carry request URLs, which may name FHIR patients (the reason access logs are off
    too); and on every request FastAPI otherwise asks OpenTelemetry, through the
    environment, whether a provider is configured (~5% of the event loop's time under
    load). Prometheus ``/metrics`` and the audit log are medlearn's own. FastAPI releases
    without the ``telemetry`` argument have nothing to switch off.
    """
    import inspect

    if "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


@dataclass
class _DirectRoute:
    """A FastAPI route the audit middleware calls directly (see :class:`_AuditMiddleware`)."""

    method: str
    route: Any
    handler: Callable[..., Any]


class _AuditMiddleware:
    """Pure ASGI middleware: body-size limits, one audit row per audited request, metrics.

    An audited request's response messages are held back until its audit row is committed
    (group commit); if the audit log cannot be written the client gets 503 instead, so no
    answer ever leaves without its row. A plain ASGI middleware (rather than
    ``@app.middleware``) avoids a task group and a memory stream per request.

    ``direct`` routes (the predict route) are called from here without FastAPI's router,
    dependency solving and exception middleware, which would cost more than the rest of a
    small prediction's request handling; their handlers answer errors themselves.
    """

    def __init__(
        self, app: Any, *, svc: Service, settings: ServeSettings, direct: list[_DirectRoute]
    ) -> None:
        self.app, self.svc, self.settings, self.direct = app, svc, settings, direct

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        audited = path.startswith(_AUDITED)
        scope.setdefault("state", {})["audit"] = {}
        held: list[dict[str, Any]] = []
        status = [500]
        auth_off = not self.settings.auth

        async def hold(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                if auth_off:
                    headers = list(message.get("headers", []))
                    headers.append((b"x-medlearn-auth", b"disabled"))
                    message = {**message, "headers": headers}
            if audited:
                held.append(message)
            else:
                await send(message)

        refusal = self._size_refusal(scope, method)
        try:
            if refusal is not None:
                await refusal(scope, receive, hold)
            elif (hit := self._direct(scope, method, path)) is not None:
                await hit.handler(scope, receive, hold)
            else:
                await self.app(scope, receive, hold)
        except Exception:
            if audited:  # the failure is audited too, then handled by the server
                await self._audit(scope, method, path, 500, time.perf_counter() - t0)
            raise
        latency = time.perf_counter() - t0
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or ("static" if not audited else path[:64])
        if audited:
            ok = await self._audit(scope, method, path, status[0], latency)
            if not ok:
                status[0] = 503
                held = []
                await _json_error(503, "The audit log is unavailable.")(scope, receive, send)
            for message in held:
                await send(message)
        self.svc.m_requests.labels(endpoint, str(status[0])).inc()
        self.svc.m_latency.labels(endpoint).observe(latency)

    def _direct(self, scope: dict[str, Any], method: str, path: str) -> _DirectRoute | None:
        for d in self.direct:
            if method == d.method and (match := d.route.path_regex.match(path)) is not None:
                scope["route"] = d.route
                scope["path_params"] = match.groupdict()
                return d
        return None

    def _size_refusal(self, scope: dict[str, Any], method: str) -> JSONResponse | None:
        if method not in ("POST", "PUT", "PATCH"):
            return None
        length = None
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                length = v.decode("latin-1")
                break
        if length is None or not length.isdigit():
            return _json_error(411, "A Content-Length header is required.")
        if int(length) > self.settings.max_request_bytes:
            return _json_error(
                413,
                f"Request body of {length} bytes exceeds the limit of "
                f"{self.settings.max_request_bytes} bytes.",
                "Send fewer or smaller files per request.",
            )
        return None

    async def _audit(
        self, scope: dict[str, Any], method: str, path: str, status: int, latency: float
    ) -> bool:
        a = scope["state"].get("audit", {})
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or path[:64]
        entry = AuditEntry(
            key_id=a.get("key_id", "-"),
            endpoint=f"{method} {endpoint}",
            model_name=a.get("model", ""),
            model_version=a.get("version", ""),
            input_sha256=a.get("input_sha256", ""),
            output_summary=a.get("summary", ""),
            latency_ms=latency * 1000.0,
            status=status,
        )
        try:
            await self.svc.audit.commit(entry)
        except Exception:  # noqa: BLE001 - no answer without its audit row
            log.exception("audit write failed; answering 503")
            return False
        return True


# --- the app -----------------------------------------------------------------------------------


def create_app(settings: ServeSettings) -> FastAPI:
    """Build the FastAPI app (migrates the database and loads production models on startup).

    Args:
        settings: see :class:`ServeSettings`.

    Example:
        >>> app = create_app(ServeSettings(db_url="sqlite:///medlearn.db"))  # doctest: +SKIP
    """
    svc = Service(settings)
    if not settings.auth:
        log.warning(
            "AUTHENTICATION IS DISABLED (--dev-no-auth): anyone who can reach this server can "
            "predict, read the audit log and change the registry. Never use this with real data."
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(svc.start)
        try:
            yield
        finally:
            await run_in_threadpool(svc.stop)

    app = FastAPI(
        title="medlearn decision-support service",
        version=_version(),
        description=(
            "Predictions from registered medlearn model bundles, as JSON, FHIR R4 "
            "RiskAssessment or CDS Hooks cards. Every /v1 and /cds-services call needs "
            "`Authorization: Bearer <API key>` and is written to a hash-chained audit log. "
            "Decision support only; not a medical device."
        ),
        lifespan=lifespan,
        **_no_request_telemetry(),
    )
    app.state.service = svc
    pp = PredictPath(svc)
    bearer = HTTPBearer(auto_error=False, description="An API key from `medlearn keys create`.")

    # -- errors -----------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"code": exc.status, "message": exc.message}
        if exc.hint:
            body["hint"] = exc.hint
        if exc.details is not None:
            body["details"] = exc.details
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": body}, status_code=exc.status, headers=headers)

    @app.exception_handler(MedlearnError)
    async def _ml_error(_req: Request, exc: MedlearnError) -> JSONResponse:
        from medlearn.errors import DataNotFoundError

        status = 404 if isinstance(exc, DataNotFoundError) else 422
        if type(exc).__name__ in ("ChecksumError", "CheckpointError"):
            status = 503
        body = {"code": status, "message": exc.message, "hint": exc.hint}
        return JSONResponse({"error": body}, status_code=status)

    # -- middleware: size limit, audit, metrics ----------------------------------------------
    # Outside FastAPI's own stack (error, telemetry and body-limit layers), so the direct
    # predict route skips those layers; every other request still passes through them.
    direct: list[_DirectRoute] = []  # filled below, once the predict route exists
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: _AuditMiddleware(  # type: ignore[method-assign]
        build_stack(), svc=svc, settings=settings, direct=direct
    )

    # -- auth -------------------------------------------------------------------------------
    def authorize(
        request: Request, scheme: str, credentials: str, roles: tuple[str, ...]
    ) -> Principal:
        """The request's principal if its key is valid and its role is one of ``roles``."""
        if not settings.auth:
            principal = Principal(key_id="dev-no-auth", role="admin")
            request.state.audit["key_id"] = principal.key_id
            return principal
        if not scheme or not credentials or scheme.lower() != "bearer":
            raise ApiError(
                401,
                "Missing API key.",
                hint="Send `Authorization: Bearer <key>`; create one with "
                "`medlearn keys create --role clinician`.",
            )
        principal = svc.keys.check(credentials)
        if principal is None:
            raise ApiError(401, "Invalid or revoked API key.")
        request.state.audit["key_id"] = principal.key_id
        if principal.role not in roles:
            raise ApiError(
                403,
                f"Role {principal.role!r} may not use this endpoint (allowed: {', '.join(roles)}).",
            )
        return principal

    def require(*roles: str) -> Callable[..., Principal]:
        def dep(
            request: Request,
            creds: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        ) -> Principal:
            if creds is None:
                return authorize(request, "", "", roles)
            return authorize(request, creds.scheme, creds.credentials, roles)

        return dep

    def authorize_header(request: Request, roles: tuple[str, ...]) -> Principal:
        """:func:`authorize` from the Authorization header, without a FastAPI dependency."""
        scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
        return authorize(request, scheme, credentials, roles)

    any_role = require("clinician", "admin", "auditor")
    predictor = require("clinician", "admin")
    admin = require("admin")
    auditor = require("auditor", "admin")

    # -- health and metrics -----------------------------------------------------------------
    @app.get("/healthz", tags=["ops"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: database reachable, models loaded")
    def readyz() -> JSONResponse:
        import sqlalchemy as sa

        try:
            with svc.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            db_ok = True
        except Exception:  # noqa: BLE001
            db_ok = False
        ok = db_ok and svc.ready
        body = {
            "status": "ready" if ok else "not ready",
            "database": db_ok,
            "models_loaded": [f"{n}:{v}" for n, v in svc._models],
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (no patient data)")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        for (name, version), doc in svc.drift.scores().items():
            for feat, s in doc["features"].items():
                if not math.isnan(s["psi"]):
                    svc.m_psi.labels(name, version, feat).set(s["psi"])
                if not math.isnan(s["ks"]):
                    svc.m_ks.labels(name, version, feat).set(s["ks"])
        if svc.shadow.compared:
            svc.m_shadow.set(svc.shadow.agreed / svc.shadow.compared)
        return Response(generate_latest(svc.metrics), media_type=CONTENT_TYPE_LATEST)

    # -- models -----------------------------------------------------------------------------
    @app.get("/v1/me", tags=["auth"], summary="The calling key's id and role")
    def me(p: Principal = Depends(any_role)) -> dict[str, str]:  # noqa: B008
        return {"key_id": p.key_id, "role": p.role}

    @app.get("/v1/models", tags=["models"], summary="Registered models, versions and aliases")
    def list_models(_p: Principal = Depends(any_role)) -> dict[str, Any]:  # noqa: B008
        out = []
        for name in svc.registry.names():
            versions = svc.registry.list(name)
            out.append(
                {
                    "name": name,
                    "versions": [v.version for v in versions],
                    "aliases": svc.registry.aliases(name),
                    "task": versions[-1].task,
                    "domain": versions[-1].domain,
                }
            )
        return {"models": out}

    @app.get("/v1/models/{name}", tags=["models"], summary="A model version's card and schema")
    async def model_card(
        name: str,
        request: Request,
        version: str | None = Query(None, description="A version or alias (default production)"),
        _p: Principal = Depends(any_role),  # noqa: B008
    ) -> dict[str, Any]:
        m = await run_in_threadpool(pp.resolve, name, version, request)
        man = m.manifest
        return {
            "name": m.info.name,
            "version": m.info.version,
            "aliases": svc.registry.aliases(m.info.name),
            "task": man.get("task"),
            "domain": man.get("domain"),
            "classes": man.get("classes"),
            "threshold": man.get("threshold"),
            "input": man.get("input"),
            "explain": man.get("explain"),
            "calibration": (man.get("calibration") or {}).get("method")
            if isinstance(man.get("calibration"), dict)
            else man.get("calibration"),
            "metrics": man.get("metrics"),
            "model_card": man.get("model_card"),
            "created": man.get("created"),
        }

    # The hottest route takes its query and key by hand rather than through FastAPI
    # dependencies (a third of a millisecond per request); the schema above documents them.
    @app.post(
        "/v1/models/{name}/predict",
        tags=["predict"],
        summary="Predict one or more inputs (images as multipart 'file', or JSON records)",
        openapi_extra={
            **PREDICT_BODY,
            "parameters": PREDICT_PARAMS,
            "security": [{"HTTPBearer": []}],
        },
        responses={
            401: {"description": "Missing or invalid API key"},
            403: {"description": "Role may not predict"},
            404: {"description": "Unknown model, version or alias"},
            413: {"description": "Request too large"},
            415: {"description": "Wrong input kind for this model"},
            422: {"description": "Invalid input (every bad item listed)"},
        },
    )
    async def predict(name: str, request: Request) -> Response:
        return await predict_response(name, request)

    async def predict_direct(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """:func:`predict` without FastAPI's routing (errors answered as its handlers do)."""
        request = Request(scope, receive)
        try:
            response = await predict_response(scope["path_params"]["name"], request)
        except ApiError as exc:
            response = await _api_error(request, exc)
        except MedlearnError as exc:
            response = await _ml_error(request, exc)
        await response(scope, receive, send)

    route = next(r for r in app.router.routes if getattr(r, "endpoint", None) is predict)
    direct.append(_DirectRoute("POST", route, predict_direct))

    async def predict_response(name: str, request: Request) -> Response:
        authorize_header(request, ("clinician", "admin"))
        version, explain, format, patient = _predict_query(request)
        m = await pp.aresolve(name, version, request)
        rows, records = await pp.predict_rows(m, request, explain)
        rows = pp.finish(m, rows)
        request.state.audit["summary"] = _summary(rows)
        pp.shadow(m, records, rows)
        if format == "fhir":
            from medlearn.serving.fhir import to_fhir

            doc = await run_in_threadpool(
                lambda: to_fhir(
                    rows,
                    name=m.info.name,
                    version=m.info.version,
                    manifest=m.manifest,
                    patient=patient,
                )
            )
            return JSONResponse(doc, media_type="application/fhir+json")
        return FastJSONResponse(
            {"model": {"name": m.info.name, "version": m.info.version}, "predictions": rows}
        )

    # -- CDS Hooks --------------------------------------------------------------------------
    @app.get("/cds-services", tags=["cds-hooks"], summary="CDS Hooks discovery")
    def cds_discovery(_p: Principal = Depends(predictor)) -> dict[str, Any]:  # noqa: B008
        from medlearn.serving.cds import service_entry

        services = []
        for name in svc.registry.names():
            try:
                m = svc.model(svc.registry.resolve(name))
            except MedlearnError:
                continue
            if (m.manifest.get("input") or {}).get("kind", "image") != "image":
                services.append(service_entry(name, m.info.version, m.manifest))
        return {"services": services}

    @app.post("/cds-services/{service_id}", tags=["cds-hooks"], summary="patient-view cards")
    async def cds_call(
        service_id: str,
        request: Request,
        hook: dict[str, Any],
        _p: Principal = Depends(predictor),  # noqa: B008
    ) -> dict[str, Any]:
        from medlearn.serving.cds import card_for, features_from_prefetch, input_features

        if hook.get("hook") != "patient-view":
            raise ApiError(400, "Only the patient-view hook is supported.")
        m = await run_in_threadpool(pp.resolve, service_id, None, request)
        if (m.manifest.get("input") or {}).get("kind", "image") == "image":
            raise ApiError(404, f"Model {service_id!r} takes images; it is not a CDS service.")
        prefetch = hook.get("prefetch") or {}
        if not isinstance(prefetch, dict):
            raise ApiError(400, "prefetch must be an object.")
        row = features_from_prefetch(prefetch, input_features(m.manifest))
        canon = json.dumps(row, sort_keys=True, default=str)
        request.state.audit["input_sha256"] = hashlib.sha256(canon.encode()).hexdigest()
        if not row:
            return {
                "cards": [
                    {
                        "summary": f"{service_id}: no model inputs found for this patient",
                        "indicator": "info",
                        "source": {"label": f"medlearn {service_id}"},
                    }
                ]
            }
        scratch = _Scratch(svc.spool)
        try:
            records, bad = await run_in_threadpool(_records_from_rows, m.learner, [row], scratch)
        finally:
            await run_in_threadpool(scratch.cleanup)
        if bad or not records:
            raise ApiError(422, "The patient's data could not be used by the model.")
        rows = pp.finish(m, await m.batcher.run(records))
        request.state.audit["summary"] = _summary(rows)
        return {"cards": [card_for(rows[0], name=m.info.name, version=m.info.version)]}

    # -- registry (admin) -------------------------------------------------------------------
    @app.get("/v1/registry", tags=["registry"], summary="Every registered version")
    def registry_list(_p: Principal = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        return {"versions": [v.__dict__ for v in svc.registry.list()]}

    @app.put("/v1/registry/{name}/aliases/{alias}", tags=["registry"], summary="Move an alias")
    def registry_promote(
        name: str,
        alias: str,
        body: AliasIn,
        request: Request,
        _p: Principal = Depends(admin),  # noqa: B008
    ) -> dict[str, Any]:
        request.state.audit.update(model=name, version=body.version)
        previous = svc.registry.promote(name, body.version, alias=alias)
        svc.forget_lookups()
        return {"name": name, "alias": alias, "version": body.version, "previous": previous}

    @app.post("/v1/registry/{name}/rollback", tags=["registry"], summary="Roll an alias back")
    def registry_rollback(
        name: str,
        request: Request,
        alias: str = Query("production", max_length=64),
        _p: Principal = Depends(admin),  # noqa: B008
    ) -> dict[str, Any]:
        version = svc.registry.rollback(name, alias=alias)
        svc.forget_lookups()
        request.state.audit.update(model=name, version=version)
        return {"name": name, "alias": alias, "version": version}

    @app.get("/v1/registry/verify", tags=["registry"], summary="Re-check every bundle sha256")
    def registry_verify(_p: Principal = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        results = [
            {"name": v.name, "version": v.version, "ok": p is None, "problem": p}
            for v, p in svc.registry.verify()
        ]
        return {"ok": all(r["ok"] for r in results), "versions": results}

    # -- audit (auditor) --------------------------------------------------------------------
    @app.get("/v1/audit", tags=["audit"], summary="Audit rows (newest last)")
    def audit_rows(
        after: int = Query(0, ge=0, le=2**62, description="Only rows with seq > after"),
        limit: int = Query(100, ge=1, le=1000),
        _p: Principal = Depends(auditor),  # noqa: B008
    ) -> dict[str, Any]:
        rows = []
        for r in export_rows(svc.engine):
            if r["seq"] > after:
                rows.append(r)
                if len(rows) >= limit:
                    break
        return {"rows": rows}

    @app.get("/v1/audit/verify", tags=["audit"], summary="Verify the audit hash chain")
    def audit_verify(_p: Principal = Depends(auditor)) -> dict[str, Any]:  # noqa: B008
        rep = verify_chain(svc.engine)
        return {
            "ok": rep.ok,
            "rows": rep.rows,
            "first_bad_seq": rep.first_bad_seq,
            "problem": rep.problem,
        }

    # -- web page ---------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(_WEB / "index.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=_WEB), name="static")
    return app


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _version() -> str:
    import medlearn

    return str(medlearn.__version__)
