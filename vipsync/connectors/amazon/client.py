"""The SP-API client: python-amazon-sp-api for requests and LWA, made safe for a sync.

What python-amazon-sp-api (2.1.x, httpx) does and what this wrapper adds:

- It raises only when a response body carries ``errors``; a 429 or a 5xx without such a
  body comes back as an empty ``ApiResponse``. Here every response goes through
  :class:`_VerifyingTransport`, which turns anything but a 2xx JSON object into one of our
  errors before the library sees it, so a response that is not a verified success can never
  look like "no orders" and advance a bookmark.
- It caches LWA access tokens for 3,200 s in a process-wide cache, whatever ``expires_in``
  says, and never refreshes on a 403. Here :class:`_LwaClient` keeps the token per client,
  refreshes it 60 s before ``expires_in`` and again after a 403 whose error says the token
  is expired or invalid (once per call).
- Its endpoint is the region's production host; ``endpoint`` (the stores file's optional
  ``endpoint``) points every call, and the LWA token endpoint, at a sandbox or the local
  fake (``vipsync.devtools.fake_spapi``).
- Pacing: each operation waits for its token bucket (:mod:`.pacing`) before it is sent and
  adopts the ``x-amzn-RateLimit-Limit`` rate of each response; a 429 empties the bucket
  and the call is retried after backoff.
"""

from __future__ import annotations

import gzip
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, cast
from urllib.parse import urlsplit

import httpx
from sp_api.api import Reports
from sp_api.api.finances.finances_v0 import FinancesV0
from sp_api.api.orders.orders_v0 import OrdersV0
from sp_api.auth import AccessTokenClient, AccessTokenResponse
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import Marketplaces
from sp_api.base._transport_httpx import HttpxTransport
from sp_api.base.exceptions import SellingApiException

from vipsync.config.stores import AmazonAccount
from vipsync.connectors.amazon.pacing import Clock, Pacer, RealClock, backoff_s
from vipsync.downloads import current_workspace
from vipsync.errors import PermanentSourceError, RateLimited, TransientSourceError

__all__ = ["DEFAULT_LWA_URL", "REGION_MARKETPLACE", "FinancesPage", "OrdersPage", "SpApiClient", "iso_z"]

log = logging.getLogger(__name__)

DEFAULT_LWA_URL = "https://api.amazon.com/auth/o2/token"
REGION_MARKETPLACE = {"NA": Marketplaces.US, "EU": Marketplaces.DE, "FE": Marketplaces.JP}
TOKEN_ERROR_WORDS = ("expired", "access token", "invalid token", "unauthorized")


def iso_z(ts: datetime) -> str:
    """UTC ISO 8601 with a ``Z``, as SP-API documents its date parameters."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Throttled(Exception):
    """A 429 (internal: the caller backs off and retries)."""


class _TokenRejected(Exception):
    """A 403 saying the access token is expired or invalid (internal: refresh, retry)."""


def _error_summary(resp: httpx.Response) -> tuple[str, str]:
    try:
        body = resp.json()
        err = (body.get("errors") or [{}])[0] if isinstance(body, dict) else {}
        text = " ".join(str(err.get(k) or "") for k in ("message", "details")).strip()
        return str(err.get("code") or ""), text[:200]
    except (ValueError, AttributeError, IndexError):
        return "", ""


class _VerifyingTransport(HttpxTransport):
    """Every SP-API response is checked here before the library parses it."""

    def __init__(self, client: httpx.Client) -> None:
        super().__init__(client=client)
        self.op = "?"
        self.last_status: int | None = None

    def request(self, method, url, *, params=None, data=None, content=None, headers=None):
        try:
            resp = super().request(method, url, params=params, data=data, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientSourceError(f"{self.op}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientSourceError(f"{self.op}: connection failed ({type(exc).__name__})") from None
        self.last_status = resp.status_code
        status = resp.status_code
        if status == 429:
            raise _Throttled()
        if status >= 500:
            raise TransientSourceError(f"{self.op}: HTTP {status}")
        if status == 403:
            code, message = _error_summary(resp)
            if code == "Unauthorized" and any(w in message.lower() for w in TOKEN_ERROR_WORDS):
                raise _TokenRejected()
            raise PermanentSourceError(f"{self.op}: HTTP 403 {code}: {message}")
        if status >= 400:
            code, message = _error_summary(resp)
            raise PermanentSourceError(f"{self.op}: HTTP {status} {code}: {message}")
        if status < 200 or status >= 300:
            raise TransientSourceError(f"{self.op}: unexpected HTTP {status}")
        try:
            body = resp.json()
        except ValueError:
            raise TransientSourceError(f"{self.op}: HTTP {status} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise TransientSourceError(f"{self.op}: HTTP {status} with a body that is not a JSON object")
        return resp


def _lwa_class(url: str, http: httpx.Client, clock: Clock, *, refresh_margin_s: float = 60.0):
    """An AccessTokenClient pointed at ``url`` that honours ``expires_in`` and can be
    invalidated (python-amazon-sp-api's own cache does neither)."""
    parts = urlsplit(url)

    class _LwaClient(AccessTokenClient):
        scheme = f"{parts.scheme}://"
        host = parts.netloc
        path = parts.path or "/auth/o2/token"

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._transport = HttpxTransport(client=http)
            self._token: dict | None = None
            self._expires_at = 0.0
            self.refreshes = 0

        def get_auth(self) -> AccessTokenResponse:
            now = clock.monotonic()
            if self._token is None or now >= self._expires_at:
                try:
                    token = self._request(self.scheme + self.host + self.path, self.data, self.headers)
                except httpx.TransportError as exc:
                    raise TransientSourceError(f"LWA token request failed ({type(exc).__name__})") from None
                except ValueError:
                    raise TransientSourceError(
                        "LWA token endpoint answered with a body that is not JSON"
                    ) from None
                self._token = token
                self.refreshes += 1
                ttl = float(token.get("expires_in") or 3600)
                self._expires_at = now + max(ttl - refresh_margin_s, ttl / 2)
            return AccessTokenResponse(**self._token)

        def invalidate(self) -> None:
            self._token = None

    return _LwaClient


def _host_header_fix(cls: type[Any]) -> type[Any]:
    base: Any = cls

    class Fixed(base):
        @property
        def headers(self):  # the library writes endpoint[8:], wrong for http:// endpoints
            h = super().headers
            h["host"] = urlsplit(self.endpoint).netloc
            return h

    Fixed.__name__ = cls.__name__
    return Fixed


_Orders = _host_header_fix(OrdersV0)
_Reports = _host_header_fix(Reports)
_Finances = _host_header_fix(FinancesV0)


@dataclass
class FinancesPage:
    """One verified listFinancialEvents page: its event lists by name (``RefundEventList``...)."""

    events: dict[str, list]
    next_token: str | None
    payload: dict


@dataclass
class OrdersPage:
    """One verified getOrders page."""

    orders: list[dict]
    next_token: str | None
    payload: dict


class SpApiClient:
    """One seller account's SP-API: paced, verified, retried calls."""

    def __init__(
        self,
        account: AmazonAccount,
        *,
        refresh_token: str,
        lwa_app_id: str,
        lwa_client_secret: str,
        endpoint: str | None = None,
        lwa_url: str | None = None,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        pacing_state: dict | None = None,
        max_attempts: int = 6,
        timeout_s: float = 30.0,
        retry_base_s: float = 2.0,
    ) -> None:
        self.account = account
        self.clock = clock or RealClock()
        self.http = http or httpx.Client(timeout=timeout_s)
        self.pacer = Pacer(self.clock, state=pacing_state)
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.token_refreshes_forced = 0
        endpoint = endpoint.rstrip("/") if endpoint else None
        lwa_url = lwa_url or (f"{endpoint}/auth/o2/token" if endpoint else DEFAULT_LWA_URL)
        credentials = {
            "refresh_token": refresh_token,
            "lwa_app_id": lwa_app_id,
            "lwa_client_secret": lwa_client_secret,
        }
        lwa_cls = _lwa_class(lwa_url, self.http, self.clock)
        market = REGION_MARKETPLACE[account.region]
        self._transport = _VerifyingTransport(self.http)
        self._orders = _Orders(
            market, refresh_token=refresh_token, credentials=credentials, auth_token_client_class=lwa_cls
        )
        self._reports = _Reports(
            market, refresh_token=refresh_token, credentials=credentials, auth_token_client_class=lwa_cls
        )
        self._finances = _Finances(
            market, refresh_token=refresh_token, credentials=credentials, auth_token_client_class=lwa_cls
        )
        self._reports._auth = self._orders._auth  # one token for all
        self._finances._auth = self._orders._auth
        for c in (self._orders, self._reports, self._finances):
            c._transport.close()
            c._transport = self._transport
            if endpoint:
                c.endpoint = endpoint
        self._lwa = self._orders._auth

    @classmethod
    def for_account(cls, account: AmazonAccount, **kwargs: Any) -> SpApiClient:
        """Credentials from the environment variables the stores file names."""
        return cls(
            account,
            refresh_token=account.credential("refresh_token"),
            lwa_app_id=account.credential("lwa_app_id"),
            lwa_client_secret=account.credential("lwa_client_secret"),
            endpoint=kwargs.pop("endpoint", None) or account.endpoint,
            **kwargs,
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ the one call path
    @property
    def waited_s(self) -> float:
        return self.pacer.waited_s

    def _call(self, op: str, fn, *args: Any, expect: tuple[str, type] | None = None, **kwargs: Any):
        """Send one operation: paced, verified (``expect`` = a payload key and its type that
        a success must carry), retried on throttling, 5xx and unverified 2xx responses."""
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            self.pacer.acquire(op)
            self.calls[op] += 1
            self._transport.op = op
            try:
                try:
                    res = fn(*args, **kwargs)
                finally:
                    self.pacer.settle(op)
                if expect is not None:
                    payload = res.payload if isinstance(res.payload, dict) else {}
                    if not isinstance(payload.get(expect[0]), expect[1]):
                        raise TransientSourceError(
                            f"{op}: a 2xx response without {expect[0]} (not a verified success)"
                        )
            except _Throttled:
                self.throttled[op] += 1
                wait = max(self.pacer.throttled(op), backoff_s(attempt, base_s=self.retry_base_s / 2))
                if attempt >= self.max_attempts:
                    raise RateLimited(
                        f"{op}: still throttled after {attempt} attempts", retry_after_s=wait
                    ) from None
                log.info("throttled; backing off", extra={"op": op, "wait_s": round(wait, 2)})
                self.clock.sleep(wait)
                self.pacer.waited_s += wait
                continue
            except _TokenRejected:
                if refreshed:
                    raise PermanentSourceError(
                        f"{op}: access token refused again right after a refresh"
                    ) from None
                refreshed = True
                self.token_refreshes_forced += 1
                self._lwa.invalidate()
                continue
            except TransientSourceError:
                if attempt >= self.max_attempts:
                    raise
                self.clock.sleep(backoff_s(attempt, base_s=self.retry_base_s, cap_s=60.0))
                continue
            except AuthorizationError as exc:
                if (exc.status_code or 0) >= 500 and attempt < self.max_attempts:
                    self.clock.sleep(backoff_s(attempt, base_s=self.retry_base_s, cap_s=60.0))
                    continue
                raise PermanentSourceError(
                    f"LWA refused the refresh token: {exc.error_code} (HTTP {exc.status_code})"
                ) from None
            except SellingApiException as exc:  # a 2xx whose body carries errors
                raise PermanentSourceError(
                    f"{op}: {getattr(exc, 'amzn_code', '')}: {getattr(exc, 'message', '')}"[:300]
                ) from None
            self.pacer.observe_rate(op, (res.headers or {}).get("x-amzn-RateLimit-Limit"))
            return res

    # ------------------------------------------------------------------ Orders API v0
    def get_orders_page(
        self,
        *,
        marketplace_ids: Sequence[str],
        updated_after: datetime,
        updated_before: datetime | None,
        next_token: str | None = None,
        page_size: int = 100,
    ) -> OrdersPage:
        """One getOrders page. Paging sends the same filters plus ``NextToken`` (the form of
        the documented sandbox example)."""
        if not 1 <= len(marketplace_ids) <= 50:
            raise ValueError("getOrders takes 1 to 50 marketplace ids")
        params: dict[str, Any] = {
            "MarketplaceIds": list(marketplace_ids),
            "LastUpdatedAfter": iso_z(updated_after),
            "MaxResultsPerPage": page_size,
        }
        if updated_before is not None:
            limit = self.clock.now().timestamp() - 120
            if updated_before.timestamp() > limit:
                raise ValueError("LastUpdatedBefore must be at least 2 minutes before now")
            params["LastUpdatedBefore"] = iso_z(updated_before)
        if next_token:
            params["NextToken"] = next_token
        res = self._call("getOrders", self._orders.get_orders, expect=("Orders", list), **params)
        payload = res.payload if isinstance(res.payload, dict) else {}
        orders = payload.get("Orders")
        if not isinstance(orders, list):
            raise TransientSourceError(
                "getOrders: a 2xx response without an Orders list (not a verified page)"
            )
        token = payload.get("NextToken") or None
        return OrdersPage(orders=orders, next_token=token, payload=payload)

    def get_order(self, order_id: str) -> dict | None:
        """One v0 order by id (getOrder), or None when the account has no such order."""
        try:
            res = self._call("getOrder", self._orders.get_order, order_id, expect=("AmazonOrderId", str))
        except PermanentSourceError:
            if self._transport.last_status == 404:
                return None
            raise
        return res.payload if isinstance(res.payload, dict) else None

    def get_order_items(self, order_id: str) -> list[dict]:
        items: list[dict] = []
        token = None
        seen: set[str] = set()
        while True:
            kwargs: dict[str, Any] = {"NextToken": token} if token else {}
            res = self._call(
                "getOrderItems", self._orders.get_order_items, order_id, expect=("OrderItems", list), **kwargs
            )
            payload = res.payload if isinstance(res.payload, dict) else {}
            page = payload.get("OrderItems")
            if not isinstance(page, list):
                raise TransientSourceError(f"getOrderItems {order_id}: a 2xx response without OrderItems")
            items.extend(page)
            token = payload.get("NextToken")
            if not token:
                return items
            if token in seen:
                raise PermanentSourceError(f"getOrderItems {order_id}: NextToken repeats (paging loop)")
            seen.add(token)

    def get_order_address(self, order_id: str) -> dict | None:
        res = self._call("getOrderAddress", self._orders.get_order_address, order_id)
        payload = res.payload if isinstance(res.payload, dict) else {}
        return payload.get("ShippingAddress")

    # ------------------------------------------------------------------ Finances API v0
    def list_financial_events_page(
        self,
        *,
        posted_after: datetime,
        posted_before: datetime,
        next_token: str | None = None,
        page_size: int = 100,
    ) -> FinancesPage:
        """One listFinancialEvents page of events posted in ``[posted_after, posted_before)``
        (``PostedBefore`` at least 2 minutes before now, as the API requires). Paging sends
        the same filters plus ``NextToken``."""
        limit = self.clock.now().timestamp() - 120
        if posted_before.timestamp() > limit:
            raise ValueError("PostedBefore must be at least 2 minutes before now")
        if posted_after >= posted_before:
            raise ValueError("PostedAfter must be before PostedBefore")
        params: dict[str, Any] = {
            "PostedAfter": iso_z(posted_after),
            "PostedBefore": iso_z(posted_before),
            "MaxResultsPerPage": max(1, min(100, page_size)),
        }
        if next_token:
            params["NextToken"] = next_token
        res = self._call(
            "listFinancialEvents",
            self._finances.list_financial_events,
            expect=("FinancialEvents", dict),
            **params,
        )
        payload = res.payload if isinstance(res.payload, dict) else {}
        events = payload.get("FinancialEvents")
        if not isinstance(events, dict):
            raise TransientSourceError("listFinancialEvents: a 2xx response without FinancialEvents")
        lists = {k: v for k, v in events.items() if isinstance(v, list)}
        return FinancesPage(events=lists, next_token=payload.get("NextToken") or None, payload=payload)

    # ------------------------------------------------------------------ Reports API
    def create_report(
        self, *, report_type: str, start: datetime, end: datetime, marketplace_ids: Sequence[str]
    ) -> str:
        res = self._call(
            "createReport",
            self._reports.create_report,
            expect=("reportId", str),
            reportType=report_type,
            dataStartTime=iso_z(start),
            dataEndTime=iso_z(end),
            marketplaceIds=list(marketplace_ids),
        )
        report_id = (res.payload or {}).get("reportId")
        if not report_id:
            raise TransientSourceError("createReport: a 2xx response without a reportId")
        return str(report_id)

    def get_report(self, report_id: str) -> dict:
        res = self._call("getReport", self._reports.get_report, report_id, expect=("processingStatus", str))
        payload = res.payload if isinstance(res.payload, dict) else {}
        if "processingStatus" not in payload:
            raise TransientSourceError(f"getReport {report_id}: a 2xx response without processingStatus")
        return payload

    def get_report_document(self, document_id: str) -> dict:
        res = self._call(
            "getReportDocument", self._reports.get_report_document, document_id, expect=("url", str)
        )
        payload = res.payload if isinstance(res.payload, dict) else {}
        if not payload.get("url"):
            raise TransientSourceError(f"getReportDocument {document_id}: a 2xx response without a url")
        return payload

    @contextmanager
    def open_document(
        self, document: dict, *, spool_bytes: int = 16 * 1024 * 1024
    ) -> Iterator[tuple[IO[bytes], str | None]]:
        """Download a report document (streamed to a spooled temporary file), gunzip it
        when ``compressionAlgorithm`` says so; yields (binary file, charset or None)."""
        url = document["url"]
        # Past spool_bytes the document goes to a file: in the job's private workspace of
        # the data folder when there is one (vipsync/downloads.py).
        with tempfile.SpooledTemporaryFile(max_size=spool_bytes, dir=_dir_or_none()) as tmp:
            charset = None
            for attempt in range(1, self.max_attempts + 1):
                tmp.seek(0)
                tmp.truncate()
                try:
                    with self.http.stream("GET", url) as resp:
                        if resp.status_code >= 500 or resp.status_code == 429:
                            raise TransientSourceError(f"report document download: HTTP {resp.status_code}")
                        if resp.status_code >= 400:
                            raise PermanentSourceError(f"report document download: HTTP {resp.status_code}")
                        charset = resp.charset_encoding
                        for chunk in resp.iter_bytes():
                            tmp.write(chunk)
                    break
                except (httpx.TransportError, TransientSourceError) as exc:
                    if attempt >= self.max_attempts:
                        raise TransientSourceError(
                            f"report document download failed ({type(exc).__name__})"
                        ) from None
                    self.clock.sleep(backoff_s(attempt, base_s=self.retry_base_s, cap_s=60.0))
            tmp.seek(0)
            if str(document.get("compressionAlgorithm") or "").upper() == "GZIP":
                with gzip.GzipFile(fileobj=tmp, mode="rb") as gz:
                    yield cast(IO[bytes], gz), charset
            else:
                yield tmp, charset


def _dir_or_none() -> str | None:
    path = current_workspace()
    return str(path) if path is not None else None
