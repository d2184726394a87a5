"""`HttpSourceSettings`, `HttpUpsertSettings`/`HttpDeleteSettings`, `ErrorHandling` and
`DynamicParameter` read once into typed settings (the vendor names stay here)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from jobs.sync.spec import (
    SpecError,
    columns,
    flag,
    integer,
    json_object,
    json_value,
    text,
)
from jobs.systems.http.connection import header_pairs

# PagingStrategy: the vendor stores a number; names are accepted too (docs/http.md).
PAGING_NAMES = {
    0: "none",
    1: "offset",
    2: "page",
    3: "nextlink",
    4: "linkheader",
    5: "token",
}
_PAGING_ALIASES = {
    "": "none",
    "none": "none",
    "offset": "offset",
    "offsetlimit": "offset",
    "limitoffset": "offset",
    "page": "page",
    "pagenumber": "page",
    "nextlink": "nextlink",
    "next": "nextlink",
    "nexturl": "nextlink",
    "linkheader": "linkheader",
    "link": "linkheader",
    "token": "token",
    "continuation": "token",
    "continuationtoken": "token",
    "cursor": "token",
}
DEFAULT_MAX_PAGES = 10_000


@dataclass(frozen=True)
class PagingSettings:
    kind: str = "none"
    page_size: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    page_param: str = "page"
    start_at: int = 0
    next_link_path: str = ""
    token_path: str = ""
    token_param: str = "continuationToken"
    max_pages: int = DEFAULT_MAX_PAGES


def paging(strategy: Any, options: Any, where: str) -> PagingSettings:
    if isinstance(strategy, bool):
        raise SpecError(f"{where}.PagingStrategy must be a number or a name.")
    if isinstance(strategy, int) or (isinstance(strategy, str) and strategy.strip().isdigit()):
        number = int(strategy)
        if number not in PAGING_NAMES:
            raise SpecError(
                f"{where}.PagingStrategy {number} is not one of "
                + ", ".join(f"{k} ({v})" for k, v in PAGING_NAMES.items())
                + "."
            )
        kind = PAGING_NAMES[number]
    elif strategy is None or isinstance(strategy, str):
        name = (strategy or "").strip().lower().replace("_", "").replace("-", "").replace(" ", "")
        if name not in _PAGING_ALIASES:
            raise SpecError(
                f"{where}.PagingStrategy {strategy!r} is not one of "
                + ", ".join(sorted(set(PAGING_NAMES.values())))
                + "."
            )
        kind = _PAGING_ALIASES[name]
    else:
        raise SpecError(f"{where}.PagingStrategy must be a number or a name.")
    data = json_object(options, f"{where}.OffsetStrategy")
    opts = {k.lower(): v for k, v in data.items()}
    w = f"{where}.OffsetStrategy"
    settings = PagingSettings(
        kind=kind,
        page_size=integer(opts.get("pagesize", opts.get("limit")), f"{w}.PageSize", default=100),
        offset_param=text(opts.get("offsetparam"), f"{w}.OffsetParam") or "offset",
        limit_param=text(opts.get("limitparam"), f"{w}.LimitParam") or "limit",
        page_param=text(opts.get("pageparam"), f"{w}.PageParam") or "page",
        start_at=integer(opts.get("startat"), f"{w}.StartAt", default=1 if kind == "page" else 0),
        next_link_path=text(opts.get("nextlinkpath"), f"{w}.NextLinkPath"),
        token_path=text(opts.get("tokenpath"), f"{w}.TokenPath"),
        token_param=text(opts.get("tokenparam"), f"{w}.TokenParam") or "continuationToken",
        max_pages=integer(opts.get("maxpages"), f"{w}.MaxPages", default=DEFAULT_MAX_PAGES),
    )
    if settings.page_size <= 0 or settings.max_pages <= 0:
        raise SpecError(f"{w}.PageSize and MaxPages must be positive.")
    if kind == "nextlink" and not settings.next_link_path:
        raise SpecError(f"{w}.NextLinkPath is needed by the nextlink paging strategy.")
    if kind == "token" and not settings.token_path:
        raise SpecError(f"{w}.TokenPath is needed by the token paging strategy.")
    return settings


@dataclass(frozen=True)
class DocumentSettings:
    """`ApplyContentTx` + `PayloadTxSettings`: how a response document becomes rows."""

    apply: bool = False
    root_path: str = ""
    raw_column: str = ""
    selected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HttpRequestSettings:
    uri: str = ""
    verb: str = "GET"
    content_type: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload: str = ""
    is_rest: bool = True


@dataclass(frozen=True)
class HttpSourceSettings:
    request: HttpRequestSettings
    document: DocumentSettings
    paging: PagingSettings
    high_water_mark: str = ""
    high_water_mark_param: str = ""


def _request(data: dict[str, Any], where: str) -> HttpRequestSettings:
    verb = (text(data.get("HTTPVerb"), f"{where}.HTTPVerb") or "").upper()
    payload = data.get("HTTPPayload")
    if payload is not None and not isinstance(payload, str):
        raise SpecError(f"{where}.HTTPPayload must be text.")
    is_rest = flag(data.get("IsRESTRequest"), f"{where}.IsRESTRequest", default=True)
    content_type = text(data.get("HTTPContentType"), f"{where}.HTTPContentType")
    if verb and verb not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        raise SpecError(f"{where}.HTTPVerb {verb!r} is not an HTTP method.")
    try:
        headers = header_pairs(data.get("HTTPHeaders"), f"{where}.HTTPHeaders")
    except SpecError as exc:
        raise SpecError(str(exc)) from None
    return HttpRequestSettings(
        uri=text(data.get("HTTPURI"), f"{where}.HTTPURI"),
        verb=verb or ("POST" if payload else "GET"),
        content_type=content_type or ("application/json" if is_rest else "text/xml"),
        headers=headers,
        payload=payload or "",
        is_rest=is_rest,
    )


def source_settings(data: dict[str, Any], where: str = "HttpSourceSettings") -> HttpSourceSettings:
    tx = json_object(data.get("PayloadTxSettings"), f"{where}.PayloadTxSettings")
    apply = flag(data.get("ApplyContentTx"), f"{where}.ApplyContentTx")
    return HttpSourceSettings(
        request=_request(data, where),
        document=DocumentSettings(
            apply=apply,
            root_path=text(tx.get("TxDocumentRootPath"), f"{where}.TxDocumentRootPath"),
            raw_column=text(tx.get("TxDocumentMsgContentCol"), f"{where}.TxDocumentMsgContentCol"),
            selected=columns(data.get("SelectedColumns")),
        ),
        paging=paging(data.get("PagingStrategy"), data.get("OffsetStrategy"), where),
        high_water_mark=text(data.get("HighWaterMark"), f"{where}.HighWaterMark"),
        high_water_mark_param=text(data.get("HighWaterMarkParam"), f"{where}.HighWaterMarkParam"),
    )


def unsupported_source_settings(data: dict[str, Any]) -> list[str]:
    """Settings of the vendor's `HttpSourceSettings` this gateway cannot honour, when they ask
    for something (the exports carry them switched off); a run refuses them by name."""
    found = []
    if flag(data.get("IncludeByteOutput"), "IncludeByteOutput"):
        found.append("IncludeByteOutput (the response's bytes as a column)")
    options = json_object(data.get("LogSettings"), "LogSettings").get("dbOptions")
    if isinstance(options, dict):
        for name in ("logHttpResponse", "logPayload"):
            if flag(options.get(name), f"LogSettings.dbOptions.{name}"):
                found.append(f"LogSettings.dbOptions.{name} (logging HTTP traffic to a table)")
    tx = json_object(data.get("PayloadTxSettings"), "PayloadTxSettings")
    if text(tx.get("TxDocumentMsgSchema"), "PayloadTxSettings.TxDocumentMsgSchema"):
        found.append("PayloadTxSettings.TxDocumentMsgSchema")
    return found


# -- writers -----------------------------------------------------------------------------------
FAIL, SKIP, DEAD_LETTER = 0, 1, 2
_ACTIONS = {"fail": FAIL, "stop": FAIL, "skip": SKIP, "ignore": SKIP, "deadletter": DEAD_LETTER}


@dataclass(frozen=True)
class ErrorHandling:
    action: int = FAIL
    retry_count: int = 0
    retry_ttl_seconds: float = 0.0
    retry_exponential: bool = False
    dead_letter_path: str = ""


def error_handling(value: Any, where: str) -> ErrorHandling:
    data = json_object(value, f"{where}.ErrorHandling")
    raw = data.get("ActionOnFail")
    if isinstance(raw, str) and not raw.strip().isdigit():
        name = raw.strip().lower().replace(" ", "").replace("_", "")
        if name not in _ACTIONS:
            raise SpecError(
                f"{where}.ErrorHandling.ActionOnFail {raw!r} is not 0 (fail), 1 (skip) or "
                "2 (dead letter)."
            )
        action = _ACTIONS[name]
    else:
        action = integer(raw, f"{where}.ErrorHandling.ActionOnFail")
        if action not in (FAIL, SKIP, DEAD_LETTER):
            raise SpecError(
                f"{where}.ErrorHandling.ActionOnFail {action} is not 0 (fail), 1 (skip) or "
                "2 (dead letter)."
            )
    retries = integer(data.get("RetryCount"), f"{where}.ErrorHandling.RetryCount")
    if not 0 <= retries <= 100:
        raise SpecError(f"{where}.ErrorHandling.RetryCount must be between 0 and 100.")
    return ErrorHandling(
        action=action,
        retry_count=retries,
        retry_ttl_seconds=float(
            integer(data.get("RetryTTLSeconds"), f"{where}.ErrorHandling.RetryTTLSeconds")
        ),
        retry_exponential=flag(
            data.get("RetryExponential"), f"{where}.ErrorHandling.RetryExponential"
        ),
        dead_letter_path=text(
            data.get("DeadLetterQueuePath"), f"{where}.ErrorHandling.DeadLetterQueuePath"
        ),
    )


@dataclass(frozen=True)
class HttpTargetRequest:
    request: HttpRequestSettings
    script: str
    ignore_codes: frozenset[int] = frozenset()

    @property
    def configured(self) -> bool:
        return bool(self.request.uri or self.script)


def _codes(value: Any, where: str) -> frozenset[int]:
    if value in (None, ""):
        return frozenset()
    items = value if isinstance(value, list) else str(value).replace(";", ",").split(",")
    codes = set()
    for item in items:
        if str(item).strip():
            code = integer(item, f"{where}.IgnoreBatchErrorCodes")
            if not 100 <= code <= 599:
                raise SpecError(f"{where}.IgnoreBatchErrorCodes: {code} is not an HTTP status.")
            codes.add(code)
    return frozenset(codes)


@dataclass(frozen=True)
class HttpWriterSettings:
    upsert: HttpTargetRequest
    delete: HttpTargetRequest
    batch_count: int
    errors: ErrorHandling


def unsupported_writer_settings(definition: dict[str, Any]) -> list[str]:
    """Writer settings this gateway cannot honour when they ask for something; a run
    refuses them by name (the exports carry them as null)."""
    options = json_object(definition.get("Options"), "Options")
    return [
        f"{name}.BatchFinalizationSettings (a request after the batches)"
        for name in ("HttpUpsertSettings", "HttpDeleteSettings")
        if json_object(options.get(name), name).get("BatchFinalizationSettings")
        not in (None, "", {}, [])
    ]


def writer_settings(definition: dict[str, Any], where: str = "JobWriter") -> HttpWriterSettings:
    options = json_object(definition.get("Options"), f"{where}.Options")

    def target(name: str, script_name: str, verb: str) -> HttpTargetRequest:
        data = json_object(options.get(name), f"{where}.Options.{name}")
        request = _request(data, f"{where}.Options.{name}")
        if not text(data.get("HTTPVerb"), f"{where}.Options.{name}.HTTPVerb"):
            request = replace(request, verb=verb)  # upserts POST, deletes DELETE by default
        return HttpTargetRequest(
            request=request,
            script=str(definition.get(script_name) or "") or str(data.get("HTTPPayload") or ""),
            ignore_codes=_codes(data.get("IgnoreBatchErrorCodes"), f"{where}.Options.{name}"),
        )

    batch = integer(options.get("BatchCount"), f"{where}.Options.BatchCount", default=1)
    return HttpWriterSettings(
        upsert=target("HttpUpsertSettings", "UpsertScript", "POST"),
        delete=target("HttpDeleteSettings", "DeleteScript", "DELETE"),
        batch_count=max(1, batch),
        errors=error_handling(options.get("ErrorHandling"), f"{where}.Options"),
    )


# -- DynamicParameter --------------------------------------------------------------------------
@dataclass(frozen=True)
class DynamicParameter:
    sql: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    connection: str = ""
    max_dop: int = 1
    single_job_per_param: bool = False
    add_params_to_output: bool = False


def dynamic_parameter(value: Any, where: str = "JsonData.DynamicParameter") -> DynamicParameter:
    data = json_object(value, where)
    raw = data.get("data")
    rows: list[dict[str, Any]] = []
    sql = ""
    if isinstance(raw, list):
        rows = raw
    elif isinstance(raw, str) and raw.strip().startswith("["):
        rows = json_value(raw, f"{where}.data")
    elif isinstance(raw, str):
        sql = raw.strip()
    elif raw is not None:
        raise SpecError(f"{where}.data must be SQL text or a list of parameter rows.")
    if not all(isinstance(row, dict) for row in rows):
        raise SpecError(f"{where}.data as a list holds objects, one per parameter row.")
    if not sql and not rows:
        raise SpecError(f"{where}.data is empty: no parameter rows to run the reader with.")
    connection = text(data.get("connection"), f"{where}.connection")
    if sql and not connection:
        raise SpecError(f"{where}.connection names the database the data SQL runs on.")
    return DynamicParameter(
        sql=sql,
        rows=rows,
        connection=connection,
        max_dop=max(1, integer(data.get("maxDop"), f"{where}.maxDop", default=1)),
        single_job_per_param=flag(data.get("singleJobPerParam"), f"{where}.singleJobPerParam"),
        add_params_to_output=flag(data.get("addParamsToOutput"), f"{where}.addParamsToOutput"),
    )
