"""HTTP JSON API: pagination, auth header from an env var or Airflow connection, retries with
exponential backoff on 429 / 5xx / network errors, incremental by updated-since.

Options (sources.yml):
  url             endpoint returning JSON (a list of records, or an object holding one)
  records_path    dotted path to the list in the response (default: the response itself)
  params          static query parameters, e.g. {"expand[]": person}
  pagination      {type: page, page_param: page, size_param: per_page, size: 100, first: 1}
                  | {type: offset, offset_param: offset, size_param: limit, size: 100}
                  | {type: cursor, cursor_param: cursor, cursor_path: next_cursor}
                  | {type: next_url, next_url_path: links.next}
                  | {type: link_header} (RFC 8288 `Link: <...>; rel="next"`, GitHub style)
                  | {type: none}
                  max_pages (default 100000): more pages, or a page URL seen twice, fail the
                  load instead of silently stopping
  window          server-side filter on the interval: {from_param: since, to_param: until,
                  format: unix | iso}
  incremental     updated-since: {column: updated_at, from_param: updated_since,
                  to_param: updated_until, format: unix | iso}; rows updated in [start, end) are
                  fetched and upserted by key, whatever their interval column
  auth            {header: Authorization, prefix: "Bearer ", env: MY_TOKEN} or {conn_id: my_api}
                  (Airflow connection: its password, else extra "token"); {basic: true} sends the
                  token as HTTP Basic user name (Delighted style)
  retries         attempts after the first (default 5); backoff_seconds (default 1.0, doubled each
                  time, Retry-After honoured, capped at max_backoff_seconds = 60); timeout_seconds 30
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nps_airflow.connectors.airflow_connections import airflow_secret
from nps_airflow.connectors.base import Batch, Part, SourceUnavailable
from nps_airflow.connectors.json_records import dig, records_frame
from nps_airflow.connectors.timestamps import in_window

if TYPE_CHECKING:
    from nps.sources import EntitySource

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
PAGINATION_TYPES = ("none", "page", "offset", "cursor", "next_url", "link_header")
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


def _fmt(when: datetime, fmt: str) -> str:
    return str(int(when.timestamp())) if fmt in ("unix", "epoch") else when.isoformat()


class HttpConnector:
    def __init__(self, source: EntitySource) -> None:
        self.source = source
        self.url = str(source.option("url"))
        self.pagination: dict[str, Any] = dict(source.option("pagination") or {"type": "none"})
        kind = self.pagination.get("type", "none")
        if kind not in PAGINATION_TYPES:
            raise ValueError(f"{source.describe()}: unknown pagination type {kind!r}; "
                             f"one of {', '.join(PAGINATION_TYPES)}")
        self.retries = int(source.option("retries", 5))
        self.backoff = float(source.option("backoff_seconds", 1.0))
        self.max_backoff = float(source.option("max_backoff_seconds", 60))
        self.timeout = float(source.option("timeout_seconds", 30))
        self.timezone = source.option("timezone", "UTC")
        self.requests_made = 0

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "nps-feedback-loop"}
        auth = self.source.option("auth") or {}
        if not auth:
            return headers
        if auth.get("conn_id"):
            token, _ = airflow_secret(auth["conn_id"])
            where = f"Airflow connection {auth['conn_id']}"
        elif auth.get("env"):
            token = os.environ.get(auth["env"], "")
            where = f"environment variable {auth['env']}"
        else:
            raise ValueError(f"{self.source.describe()}: auth needs 'env' or 'conn_id'")
        if not token:
            raise SourceUnavailable(f"{self.source.entity}: no API credential in {where}")
        if auth.get("basic"):
            value = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
        else:
            value = str(auth.get("prefix", "Bearer ")) + token
        headers[str(auth.get("header", "Authorization"))] = value
        return headers

    def _get(self, url: str, headers: dict[str, str]) -> tuple[Any, Any]:
        """GET and parse JSON (document, response headers), retrying 408/429/5xx/network errors
        with exponential backoff."""
        attempt = 0
        while True:
            self.requests_made += 1
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    body = response.read()
                    charset = response.headers.get_content_charset() or "utf-8"
                    response_headers = response.headers
                return json.loads(body.decode(charset, errors="surrogateescape")), response_headers
            except urllib.error.HTTPError as exc:
                status, retry_after = exc.code, exc.headers.get("Retry-After")
                if status not in RETRY_STATUSES:
                    hint = " (check the credential)" if status in (401, 403) else ""
                    raise SourceUnavailable(
                        f"{self.source.entity}: GET {url} returned HTTP {status}{hint}"
                    ) from exc
                reason = f"HTTP {status}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                retry_after, reason = None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            except json.JSONDecodeError as exc:
                raise SourceUnavailable(f"{self.source.entity}: GET {url} did not return JSON: {exc}") from exc
            if attempt >= self.retries:
                raise SourceUnavailable(
                    f"{self.source.entity}: GET {url} failed after {attempt + 1} attempts, last: {reason}"
                )
            delay = min(self.max_backoff, self.backoff * 2 ** attempt)
            if retry_after and retry_after.strip().isdigit():
                delay = min(self.max_backoff, max(delay, float(retry_after)))
            log.warning("%s: %s from %s; retry %d/%d in %.2fs", self.source.entity, reason, url,
                        attempt + 1, self.retries, delay)
            time.sleep(delay)
            attempt += 1

    def _params(self, start: datetime, end: datetime) -> dict[str, Any]:
        params = dict(self.source.option("params") or {})
        incremental = self.source.option("incremental") or {}
        window = incremental or self.source.option("window") or {}
        fmt = window.get("format", "iso")
        if window.get("from_param"):
            params[window["from_param"]] = _fmt(start, fmt)
        if window.get("to_param"):
            params[window["to_param"]] = _fmt(end, fmt)
        return params

    def read(self, start: datetime, end: datetime, *, window_column: str | None = None) -> Batch:
        headers = self._headers()
        params = self._params(start, end)
        kind = self.pagination.get("type", "none")
        # page number, or row offset for offset pagination
        page = int(self.pagination.get("first", 0 if kind == "offset" else 1))
        size = self.pagination.get("size")
        if kind == "offset" and not size:
            raise ValueError(f"{self.source.describe()}: offset pagination needs a page size (pagination.size)")
        cursor = None
        url: str | None = self._url(params, kind, page, size, cursor)
        parts: list[Part] = []
        max_pages = int(self.pagination.get("max_pages", 100000))
        seen: set[str] = set()
        while url:
            # stopping early would drop rows without a word: a loop or too many pages is an error
            if url in seen:
                raise SourceUnavailable(f"{self.source.entity}: pagination returned {url} twice (a cursor loop)")
            if len(parts) >= max_pages:
                raise SourceUnavailable(
                    f"{self.source.entity}: more than max_pages={max_pages} pages from {self.url}; "
                    "raise pagination.max_pages or narrow the window"
                )
            seen.add(url)
            document, response_headers = self._get(url, headers)
            records = self._records(url, document)
            parts.append(self._part(url, records))
            if not records or kind == "none":
                break
            if kind in ("page", "offset"):
                if size and len(records) < int(size):
                    break
                page += int(size) if kind == "offset" and size else 1  # offset pagination has a size
                url = self._url(params, kind, page, size, None)
            elif kind == "cursor":
                cursor = dig(document, self.pagination.get("cursor_path", "next_cursor"))
                url = self._url(params, kind, page, size, cursor) if cursor else None
            elif kind == "next_url":
                nxt = dig(document, self.pagination.get("next_url_path", "next"))
                url = urllib.parse.urljoin(self.url, nxt) if nxt else None
            elif kind == "link_header":
                match = _LINK_NEXT.search(response_headers.get("Link") or "")
                url = urllib.parse.urljoin(url, match.group(1)) if match else None
            else:
                raise ValueError(f"{self.source.describe()}: unknown pagination type {kind!r}")
        watermark = self.source.incremental_column
        if watermark:  # the API may ignore `to`: keep [start, end) only, so reruns are stable
            for part in parts:
                if watermark in part.frame.columns:
                    part.frame = part.frame[in_window(part.frame[watermark], start, end, self.timezone)]
        return Batch(parts=parts, location=self.url, units=len(parts))

    def _records(self, url: str, document: Any) -> list[Any]:
        """The page's records (at records_path)."""
        records = dig(document, self.source.option("records_path"))
        if records is None:
            return []
        if not isinstance(records, list):
            raise SourceUnavailable(
                f"{self.source.entity}: {url}: records_path {self.source.option('records_path')!r} "
                f"is not a list in the response"
            )
        return records

    @staticmethod
    def _part(url: str, records: list[Any]) -> Part:
        """A page as a Part; a record that is not a JSON object is kept as an invalid_json reject."""
        good = [r for r in records if isinstance(r, dict)]
        lines = [i for i, r in enumerate(records, start=1) if isinstance(r, dict)]
        rejects = [(i, "invalid_json", "record is not a JSON object", json.dumps(r))
                   for i, r in enumerate(records, start=1) if not isinstance(r, dict)]
        return Part(frame=records_frame(good, lines, rejects), location=url, tabular=False)

    def _url(self, params: dict[str, Any], kind: str, page: int, size: Any, cursor: Any) -> str:
        query = dict(params)
        if kind in ("page", "link_header"):
            if kind == "page":
                query[self.pagination.get("page_param", "page")] = page
            if size:
                query[self.pagination.get("size_param", "per_page")] = size
        elif kind == "offset":
            query[self.pagination.get("offset_param", "offset")] = page
            query[self.pagination.get("size_param", "limit")] = size
        elif kind == "cursor":
            if cursor:
                query[self.pagination.get("cursor_param", "cursor")] = cursor
            if size:
                query[self.pagination.get("size_param", "limit")] = size
        separator = "&" if urllib.parse.urlsplit(self.url).query else "?"
        return self.url + (separator + urllib.parse.urlencode(query) if query else "")
