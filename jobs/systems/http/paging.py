"""Paging strategies: where the next page is, and when there is none.

One small object per kind (none, offset/limit, page number, next link in the body, `Link`
header, continuation token); the reader's loop is the same for all of them. Paging values go
into `{{@offset}}`, `{{@limit}}`, `{{@page}}`, `{{@token}}` placeholders when the URI or body
has them, and otherwise into query parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from jobs.systems.http.documents import parse_json, value_at
from jobs.systems.http.settings import PagingSettings


@dataclass
class PageRequest:
    """What changes from one page's request to the next."""

    values: dict[str, Any] = field(default_factory=dict)  # placeholder values
    params: dict[str, Any] = field(default_factory=dict)  # query parameters
    uri: str | None = None  # a whole next URL/path (next link strategies)


class Pager(Protocol):
    def first(self) -> PageRequest: ...

    def next(self, response: httpx.Response, rows: int) -> PageRequest | None:
        """The request of the page after this one, or None when this was the last."""
        ...


class NoPaging:
    def first(self) -> PageRequest:
        return PageRequest()

    def next(self, response: httpx.Response, rows: int) -> PageRequest | None:
        return None


class _Placed:
    """Values go into placeholders the request has, else into query parameters."""

    def __init__(self, settings: PagingSettings, placeholders: set[str]) -> None:
        self.settings = settings
        self.placeholders = placeholders

    def place(self, named: dict[str, tuple[str, Any]]) -> PageRequest:
        request = PageRequest()
        for placeholder, (param, value) in named.items():
            request.values[placeholder] = value
            if placeholder not in self.placeholders:
                request.params[param] = value
        return request


class OffsetPaging(_Placed):
    def __init__(self, settings: PagingSettings, placeholders: set[str]) -> None:
        super().__init__(settings, placeholders)
        self.offset = settings.start_at

    def _request(self) -> PageRequest:
        s = self.settings
        return self.place(
            {"offset": (s.offset_param, self.offset), "limit": (s.limit_param, s.page_size)}
        )

    def first(self) -> PageRequest:
        return self._request()

    def next(self, response: httpx.Response, rows: int) -> PageRequest | None:
        if rows < self.settings.page_size:
            return None  # a short (or empty) page is the last one
        self.offset += rows
        return self._request()


class PageNumberPaging(_Placed):
    def __init__(self, settings: PagingSettings, placeholders: set[str]) -> None:
        super().__init__(settings, placeholders)
        self.page = settings.start_at

    def _request(self) -> PageRequest:
        s = self.settings
        return self.place(
            {"page": (s.page_param, self.page), "limit": (s.limit_param, s.page_size)}
        )

    def first(self) -> PageRequest:
        return self._request()

    def next(self, response: httpx.Response, rows: int) -> PageRequest | None:
        if rows < self.settings.page_size:
            return None
        self.page += 1
        return self._request()


def _value_at(response: httpx.Response, path: str) -> Any:
    return value_at(parse_json(response.content, "The paged response"), path)


class NextLinkPaging:
    """The body names the next page's URL (JSONPath `NextLinkPath`); none or empty ends."""

    def __init__(self, settings: PagingSettings) -> None:
        self.path = settings.next_link_path

    def first(self) -> PageRequest:
        return PageRequest()

    def next(self, response: httpx.Response, rows: int) -> PageRequest | None:
        link = _value_at(response, self.path)
        if not link or not isinstance(link, str):
            return None
        return PageRequest(uri=link)


class LinkHeaderPaging:
    """RFC 8288 `Link: <…>; rel="next"` (GitHub-style APIs)."""

    def first(self) -> PageRequest:
        return PageRequest()

    def next(self, response: httpx.Response, rows: int) -> PageRequest | None:
        link = response.links.get("next", {}).get("url")
        return PageRequest(uri=link) if link else None


class TokenPaging(_Placed):
    """A continuation token from the body (`TokenPath`) sent back as `TokenParam`."""

    def first(self) -> PageRequest:
        return PageRequest(values={"token": ""})

    def next(self, response: httpx.Response, rows: int) -> PageRequest | None:
        token = _value_at(response, self.settings.token_path)
        if token in (None, "", False):
            return None
        return self.place({"token": (self.settings.token_param, token)})


def pager_for(settings: PagingSettings, placeholders: set[str]) -> Pager:
    if settings.kind == "offset":
        return OffsetPaging(settings, placeholders)
    if settings.kind == "page":
        return PageNumberPaging(settings, placeholders)
    if settings.kind == "nextlink":
        return NextLinkPaging(settings)
    if settings.kind == "linkheader":
        return LinkHeaderPaging()
    if settings.kind == "token":
        return TokenPaging(settings, placeholders)
    return NoPaging()
