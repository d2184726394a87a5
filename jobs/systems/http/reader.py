"""An HTTP source: requests (paged, per parameter row) → documents → typed batches.

The loop is the same for every API: build the request (placeholders, paging values), send it
through the connection's client, turn the document into rows, hand them out in batches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import pickle
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from operator import itemgetter
from typing import IO, Any

import httpx

from jobs.sync.spec import ReaderSpec
from jobs.systems.base import Pushdown, Since, UnsupportedSystem
from jobs.systems.batch import Batch, Column
from jobs.systems.http import template
from jobs.systems.http.client import HttpClient
from jobs.systems.http.documents import DocumentError, document_rows, looks_like_json
from jobs.systems.http.paging import PageRequest, pager_for
from jobs.systems.http.settings import HttpSourceSettings
from jobs.systems.values import AS_IS, Mismatch, coerce, logical_type

_PLACEHOLDER_WORDS = ("highwatermark", "executionid", "offset", "limit", "page", "token")


class PagingError(RuntimeError):
    """Paging that would not end or repeats itself; nothing of the run is applied."""


# Pickled pages kept in memory before the spool goes to a file (100,000 rows of 6 columns
# pickle to about 6 MB).
SPOOL_MEMORY = 64 * 1024 * 1024


def _comparable(value: Any, like: Any) -> Any:
    """A response value (text from XML) as the kind of the stored high-water mark."""
    if isinstance(value, str):
        if isinstance(like, int) and not isinstance(like, bool):
            try:
                return int(value)
            except ValueError:
                return value
        if isinstance(like, dt.datetime):
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
            if (parsed.tzinfo is None) != (like.tzinfo is None):
                return value
            return parsed
    return value


def _as_tuples(rows: list[dict[str, Any]]) -> tuple[tuple[str, ...], list[tuple]] | None:
    """A page whose rows have exactly the same fields: (field names, value tuples)."""
    shape = tuple(rows[0])
    if not shape or set(map(len, rows)) != {len(shape)}:
        return None
    getter = itemgetter(*shape)
    try:
        values = list(map(getter, rows))
    except KeyError:
        return None
    if len(shape) == 1:
        values = [(value,) for value in values]
    return shape, values


def _rebatched(pages: Iterator[list[tuple]], size: int) -> Iterator[list[tuple]]:
    """The rows of consecutive pages in lists of `size` rows (the last one shorter)."""
    pending: list[tuple] = []
    for rows in pages:
        if not pending and len(rows) == size:
            yield rows  # a page of exactly a batch goes as it is, without a copy
            continue
        pending += rows
        while len(pending) >= size:
            yield pending[:size]
            del pending[:size]
    if pending:
        yield pending


def _observe(rows: list[dict[str, Any]], order: dict[str, str], seen: dict[str, set[type]]) -> None:
    """Add one page's field names (lowercased → first spelling) and value types."""
    names: dict[str, None] = {}
    for shape in {tuple(row) for row in rows}:
        names.update(dict.fromkeys(shape))
    for name in names:
        low = name.lower()
        order.setdefault(low, name)
        kinds = seen.setdefault(low, set())
        kinds.update(type(row.get(name)) for row in rows)


# A spooled page: field names (None: rows are dicts), rows, each field's value types.
_Page = tuple[tuple[str, ...] | None, list[Any], tuple[frozenset[type], ...]]


def _pickled(page: _Page) -> bytes:
    """A page's bytes for the spool. Value tuples are pickled without the memo: their values
    are scalars a document parser made one by one, so there is next to nothing to share,
    and remembering every object is a large part of pickling them. Pages of dicts keep it:
    their rows share the parsed field names."""
    if page[0] is None:
        return pickle.dumps(page, pickle.HIGHEST_PROTOCOL)
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    pickler.dump(page)
    return buffer.getvalue()


class _Spool:
    """Pages pickled in memory up to SPOOL_MEMORY bytes, then onto a temporary file.

    Reading back from the file takes one read per page: pickle.load on a buffered file reads
    per frame, each read letting go of the GIL, and under load each took a scheduler slice to
    win it back from the writer threads (measured: docs/http.md, "Performance")."""

    def __init__(self) -> None:
        self.count = 0
        self._memory: list[bytes] = []
        self._held = 0
        self._file: IO[bytes] | None = None
        self._sizes: list[int] = []

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def add(self, page: _Page) -> None:
        data = _pickled(page)
        self.count += 1
        if self._file is None and self._held + len(data) <= SPOOL_MEMORY:
            self._memory.append(data)
            self._held += len(data)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="gateway-http-")  # noqa: SIM115 (closed by __exit__)
        self._file.write(data)
        self._sizes.append(len(data))

    def __iter__(self) -> Iterator[_Page]:
        for index, data in enumerate(self._memory):
            self._memory[index] = b""  # memory goes back as the pages go on
            yield pickle.loads(data)  # this run's own bytes, never shared
        if self._file is not None:
            self._file.seek(0)
            for size in self._sizes:
                yield pickle.loads(self._file.read(size))


class HttpReader:
    """One reader definition on one HTTP connection."""

    # The mark goes to the service ({{@highwatermark}}, HighWaterMarkParam); rows before it
    # that a service sends anyway are dropped here too.
    pushdown = Pushdown(since=True)

    def commit(self) -> None:
        """Nothing to keep between runs: the high-water mark is the timestamp pointer's."""

    def report_to(self, log: Callable[[str], None]) -> None:
        """Nothing beyond the run's own lines."""

    def estimate_rows(self) -> int | None:
        return None  # a service's total, where it sends one, arrives with the first page

    def __init__(
        self,
        client: HttpClient,
        spec: ReaderSpec,
        settings: HttpSourceSettings,
        *,
        parameters: Iterator[dict[str, Any]] | list[dict[str, Any]] | None = None,
        add_params: bool = False,
        max_dop: int = 1,
        single_job_per_param: bool = False,
        execution_id: Any = None,
        on_columns: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.client = client
        self.spec = spec
        self.settings = settings
        self.parameters = parameters
        self.add_params = add_params
        self.max_dop = max(1, max_dop)
        self.single_job_per_param = single_job_per_param
        self._execution_id = execution_id  # a callable: the run's ExecutionId when it asks
        self._on_columns = on_columns  # told the columns once every page has been read
        self.pages = 0
        self.columns: list[Column] | None = None
        self.dropped: set[str] = set()
        request = settings.request
        self.texts = [request.uri, request.payload, *(v for _, v in request.headers)]
        self.placeholders = set().union(*(template.reader_names(t) for t in self.texts))

    # -- Reader interface ----------------------------------------------------------------------
    def batches(
        self, *, batch_size: int, limit: int | None = None, since: Since | None = None
    ) -> Iterator[Batch]:
        produced = 0
        yielded = False
        # A test run (limit) shows the first page's columns; a run has those of every page.
        pages: Iterator[_Page] = (
            ((None, rows, ()) for rows in self._documents(since))
            if limit is not None
            else self._spooled(since)
        )
        typed: Iterator[list[tuple]] = (
            self._typed_page(shape, rows, kinds, since)
            if shape is not None
            else self._typed(rows, since)
            for shape, rows, kinds in pages
        )
        if limit is None:
            # A run's pages are read already (the spool): its batches are `batch_size` rows
            # whatever the page size, since every batch costs change detection, the change
            # log and the writer a round of work of their own.
            typed = _rebatched(typed, batch_size)
        for batch_rows in typed:
            for start in range(0, len(batch_rows), batch_size):
                chunk = batch_rows[start : start + batch_size]
                if limit is not None:
                    chunk = chunk[: max(0, limit - produced)]
                if not chunk:
                    continue
                produced += len(chunk)
                yielded = True
                assert self.columns is not None
                yield Batch(list(self.columns), chunk)
                if limit is not None and produced >= limit:
                    return
        if not yielded:
            yield Batch(self.columns or self._empty_columns(), [])
        if self._on_columns is not None and self.columns is not None and limit is None:
            self._on_columns([column.name for column in self.columns])

    def separate_runs(self) -> list[tuple[str, str, HttpReader]] | None:
        """`singleJobPerParam`: one run per parameter row, each its own reader (one row)."""
        if not self.single_job_per_param or self.parameters is None:
            return None
        parts = []
        for param in self.parameters:
            described = json.dumps(param, sort_keys=True, default=str)
            stage = "param-" + hashlib.sha256(described.encode()).hexdigest()[:16]
            part = HttpReader(
                self.client,
                self.spec,
                self.settings,
                parameters=[param],
                add_params=self.add_params,
                execution_id=self._execution_id,
                on_columns=self._on_columns,
            )
            parts.append((stage, f"parameter row {described}", part))
        return parts

    def deleted_keys(self, *, batch_size: int, since: Since | None = None) -> Iterator[Batch]:
        raise UnsupportedSystem(
            "An HTTP reader has no DeletedRecordsSQL: use UpsertColumns (full sync) to detect "
            "deleted records."
        )

    def _spooled(self, since: Since | None) -> Iterator[_Page]:
        """Every page read first, onto a temporary file, learning the columns (the union of
        all pages', in order of appearance) and their types (from all values); then the pages
        again. A field that only a later page has is a column like the others, and a column
        holding integers on one page and decimals on another is a float column. The file
        keeps memory to one page whatever the number of pages.

        A page whose rows all have the same fields (the usual API page) is kept as its field
        names and value tuples — observed and pickled at C speed; any other page as its
        dicts. Yields (field names or None, rows, each field's value types)."""
        order: dict[str, str] = {}
        seen: dict[str, set[type]] = {}
        with _Spool() as spool:
            for rows in self._documents(since):
                if not rows:
                    continue
                page = _as_tuples(rows)
                if page is None:
                    _observe(rows, order, seen)
                    spool.add((None, rows, ()))
                else:
                    shape, values = page
                    kinds = tuple(frozenset(map(type, c)) for c in zip(*values, strict=True))
                    for name, types in zip(shape, kinds, strict=True):
                        order.setdefault(name.lower(), name)
                        seen.setdefault(name.lower(), set()).update(types)
                    spool.add((shape, values, kinds))
            if spool.count:
                self.columns = self._columns(order, seen)
            yield from spool

    def _typed_page(
        self,
        shape: tuple[str, ...],
        values: list[tuple],
        kinds: tuple[frozenset[type], ...],
        since: Since | None,
    ) -> list[tuple]:
        """A spooled page of value tuples in the run's columns: as it is when its fields are
        the columns in order with values of their types (no mark to filter on); else row by
        row like any page."""
        assert self.columns is not None
        if (
            (since is None or not self.spec.timestamp_col)
            and len(shape) == len(self.columns)
            and all(n.lower() == c.name.lower() for n, c in zip(shape, self.columns, strict=True))
            and all(
                AS_IS[c.type].issuperset(types)
                for c, types in zip(self.columns, kinds, strict=True)
            )
        ):
            return values
        return self._typed_rows([dict(zip(shape, row, strict=True)) for row in values], since)

    # -- requests ------------------------------------------------------------------------------
    def _base_values(self, since: Since | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "executionid" in self.placeholders:
            values["executionid"] = self._execution_id() if callable(self._execution_id) else ""
        if "highwatermark" in self.placeholders or self.settings.high_water_mark:
            values["highwatermark"] = "" if since is None else since.value
        return values

    def _documents(self, since: Since | None) -> Iterator[list[dict[str, Any]]]:
        base = self._base_values(since)
        if self.parameters is None:
            yield from self._pages(base, {}, since)
            return
        params = list(self.parameters)
        if self.max_dop <= 1 or len(params) <= 1:
            for param in params:
                yield from self._pages(base, param, since)
            return
        # maxDop: parameter rows fetched in parallel; their rows are handed out in order.
        with ThreadPoolExecutor(self.max_dop, thread_name_prefix="http-param") as pool:
            for pages in pool.map(lambda p: list(self._pages(base, p, since)), params):
                yield from pages

    def _pages(
        self, base: dict[str, Any], param: dict[str, Any], since: Since | None
    ) -> Iterator[list[dict[str, Any]]]:
        values = dict(base)
        values.update({f"param.{k.lower()}": v for k, v in param.items()})
        pager = pager_for(self.settings.paging, self.placeholders)
        seen_requests: set[str] = set()
        last_body: str | None = None
        count = 0

        def send(page: PageRequest) -> tuple[str, Future[httpx.Response]]:
            nonlocal count
            count += 1
            if count > self.settings.paging.max_pages:
                raise PagingError(
                    f"Paging stopped: more than {self.settings.paging.max_pages} pages "
                    "(OffsetStrategy.MaxPages); nothing was applied."
                )
            method, uri, headers, body, query = self._request(values, page, since)
            signature = hashlib.sha256(
                repr((method, uri, sorted(query.items()), body)).encode()
            ).hexdigest()
            if signature in seen_requests:
                raise PagingError(
                    f"Paging asked for the same page twice ({uri}); stopping rather than "
                    "looping. Nothing was applied."
                )
            seen_requests.add(signature)
            return uri, fetcher.submit(
                self.client.request,
                method,
                uri,
                headers=headers,
                content=body or None,
                params=query,
            )

        # The next page is asked for before this one's rows go down the pipeline, so the
        # service works on it while the engine works on these.
        with ThreadPoolExecutor(1, thread_name_prefix="http-page") as fetcher:
            pending: tuple[str, Future[httpx.Response]] | None = send(pager.first())
            while pending is not None:
                uri, future = pending
                response = future.result()
                self.pages += 1
                digest = hashlib.sha256(response.content).hexdigest()
                rows = self._rows(response.content, response.headers.get("content-type", ""), uri)
                if rows and digest == last_body and self.settings.paging.kind != "none":
                    raise PagingError(
                        f"The service returned the same page twice ({uri}): its paging "
                        "parameters seem ignored. Stopping rather than looping; nothing was "
                        "applied."
                    )
                last_body = digest
                if self.add_params:
                    for row in rows:
                        for name, value in param.items():
                            row.setdefault(name, value)
                following = pager.next(response, len(rows))
                pending = send(following) if following is not None else None
                yield rows

    def _request(
        self, values: dict[str, Any], page: PageRequest, since: Since | None
    ) -> tuple[str, str, list[tuple[str, str]], str, dict[str, Any]]:
        request = self.settings.request
        merged = dict(values)
        merged.update(page.values)
        where = f"Job reader '{self.spec.job_key}'"
        uri = page.uri or template.render_reader(
            request.uri, merged, template.url_escape, f"{where} HTTPURI"
        )
        escape = template.escape_for(request.content_type, is_rest=request.is_rest)
        body = template.render_reader(request.payload, merged, escape, f"{where} HTTPPayload")
        headers = [
            (k, template.render_reader(v, merged, template.raw, f"{where} HTTPHeaders"))
            for k, v in request.headers
        ]
        if (
            request.content_type
            and body
            and not any(k.lower() == "content-type" for k, _ in headers)
        ):
            headers.append(("Content-Type", request.content_type))
        query: dict[str, Any] = {} if page.uri else dict(page.params)
        hwm_param = self.settings.high_water_mark_param
        if (
            since is not None
            and hwm_param
            and "{{" not in hwm_param
            and hwm_param.lower() not in _PLACEHOLDER_WORDS
            and not page.uri
        ):
            query[hwm_param] = template.as_text(since.value)
        return request.verb, uri, headers, body, query

    # -- documents → rows ----------------------------------------------------------------------
    def _rows(self, content: bytes, content_type: str, uri: str) -> list[dict[str, Any]]:
        document = self.settings.document
        where = f"The response of {self.settings.request.verb} {uri}"
        if not document.apply:
            name = document.raw_column or "_raw"
            return [{name: content.decode("utf-8", "replace")}]
        kind = content_type.lower()
        if self.settings.request.is_rest:
            # REST answers are JSON unless the service says XML: an HTML error page then
            # fails as "not valid JSON … starts with '<html>'", which is what went wrong.
            is_json = "xml" not in kind
        else:
            is_json = "json" in kind or ("xml" not in kind and looks_like_json(kind, content))
        return document_rows(
            content,
            is_json=is_json,
            root_path=document.root_path,
            raw_column=document.raw_column,
            where=where,
        )

    def _typed(self, rows: list[dict[str, Any]], since: Since | None) -> list[tuple]:
        if not rows:
            return []
        if self.columns is None:
            self.columns = self._columns_from(rows)
        fast = self._typed_fast(rows)
        if fast is not None and (since is None or not self.spec.timestamp_col):
            return fast
        return self._typed_rows(rows, since)

    def _typed_fast(self, rows: list[dict[str, Any]]) -> list[tuple] | None:
        """Rows that all have exactly the columns (any order), with values of the columns'
        types (the usual API page): taken as they are, column checks at C speed."""
        assert self.columns is not None
        names = [c.name for c in self.columns]
        if set(map(len, rows)) != {len(names)}:
            return None
        getter = itemgetter(*names)
        try:
            out = list(map(getter, rows))
        except KeyError:
            return None
        if len(names) == 1:
            out = [(value,) for value in out]
        for column, values in zip(self.columns, zip(*out, strict=True), strict=True):
            if not AS_IS[column.type].issuperset(map(type, values)):
                return None
        return out

    def _typed_rows(self, rows: list[dict[str, Any]], since: Since | None) -> list[tuple]:
        assert self.columns is not None
        names = [c.name for c in self.columns]
        kinds = [c.type for c in self.columns]
        known = {n.lower() for n in names}
        out: list[tuple] = []
        lowered = [n.lower() for n in names]
        hwm = self.settings.high_water_mark or self.spec.timestamp_col
        hwm_at = lowered.index(hwm.lower()) if hwm and hwm.lower() in lowered else None
        for row in rows:
            by_lower = {k.lower(): v for k, v in row.items()}
            for extra in by_lower.keys() - known:
                self.dropped.add(extra)
            try:
                values = tuple(
                    coerce(by_lower.get(low), kind, name)
                    for low, kind, name in zip(lowered, kinds, names, strict=True)
                )
            except Mismatch as exc:
                raise DocumentError(
                    f"Column {exc.name!r} held {exc.kind} values on the first page but "
                    f"{exc.value!r} later; fix its type with a DataApplySchema step."
                ) from None
            if since is not None and hwm_at is not None and since.value is not None:
                # The service should filter; a row before the mark is dropped here in any case.
                value = _comparable(values[hwm_at], since.value)
                try:
                    if value is not None and value < since.value:
                        continue
                except TypeError:
                    pass
            out.append(values)
        return out

    def _columns_from(self, rows: list[dict[str, Any]]) -> list[Column]:
        order: dict[str, str] = {}
        seen: dict[str, set[type]] = {}
        _observe(rows, order, seen)
        return self._columns(order, seen)

    def _columns(self, order: dict[str, str], seen: dict[str, set[type]]) -> list[Column]:
        """The run's columns: `SelectedColumns` (plus the raw column) when declared, else
        every field found, named as first seen; typed by the values seen."""
        selected = self.settings.document.selected
        if selected:
            wanted = [*selected]
            raw = self.settings.document.raw_column
            if raw and raw.lower() not in {s.lower() for s in selected}:
                wanted.append(raw)
            names = [order.get(s.lower(), s) for s in wanted]
        else:
            names = list(order.values())
        return [Column(name, logical_type(seen.get(name.lower(), set()))) for name in names]

    def _empty_columns(self) -> list[Column]:
        """No rows at all: still the columns change detection needs (keys, selected, mark)."""
        names: list[str] = []
        for name in [
            *self.settings.document.selected,
            *self.spec.keys,
            *([self.spec.timestamp_col] if self.spec.timestamp_col else []),
        ]:
            if name.lower() not in {n.lower() for n in names}:
                names.append(name)
        return [Column(name) for name in names]
