"""Invoice PDFs (a Shopify order printout, an Amazon invoice) read with pypdf.

An invoice saves typing; it is not a stronger proof (POLICY.md, Invoice PDFs): its text
must carry exactly one order identifier, the shipping postal code and a date within one
day of the purchase. This module only reads the text; the proof job compares it with the
store. A malformed, encrypted or image-only PDF is a RecordError naming the field.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from pypdf import PdfReader

from vipsync.errors import RecordError

__all__ = ["InvoiceText", "read_invoice"]

FIELD = "invoice_pdf"
MAX_PAGES = 20
_AMAZON = re.compile(r"(?<!\d)\d{3}-\d{7}-\d{7}(?!\d)")
_MONTHS = {
    name: n
    for n, names in enumerate(
        [
            ("january", "jan", "januar", "janvier", "gennaio", "enero"),
            ("february", "feb", "februar", "février", "fevrier", "febbraio", "febrero"),
            ("march", "mar", "märz", "maerz", "mars", "marzo"),
            ("april", "apr", "avril", "aprile", "abril"),
            ("may", "mai", "maggio", "mayo"),
            ("june", "jun", "juni", "juin", "giugno", "junio"),
            ("july", "jul", "juli", "juillet", "luglio", "julio"),
            ("august", "aug", "août", "aout", "agosto"),
            ("september", "sep", "sept", "septembre", "settembre", "septiembre"),
            ("october", "oct", "oktober", "okt", "octobre", "ottobre", "octubre"),
            ("november", "nov", "novembre", "noviembre"),
            ("december", "dec", "dezember", "dez", "décembre", "decembre", "dicembre", "diciembre"),
        ],
        start=1,
    )
    for name in names
}
_MONTH_RE = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))
_DATE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"), "ymd"),
    (re.compile(r"(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{4})"), "dmy"),
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), "either"),
    (re.compile(rf"({_MONTH_RE})\.?\s+(\d{{1,2}}),?\s+(\d{{4}})", re.IGNORECASE), "Mdy"),
    (re.compile(rf"(\d{{1,2}})\.?\s+({_MONTH_RE})\.?\s+(\d{{4}})", re.IGNORECASE), "dMy"),
]

# pypdf reports recoverable oddities through logging; they are no concern of ours.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class InvoiceText:
    """What the invoice says: its order identifiers (as written), the dates it shows, and
    its text without spaces or dashes, upper-cased (for the postal-code check)."""

    identifiers: tuple[str, ...]
    dates: tuple[date, ...]
    compact: str


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _dates(text: str) -> tuple[date, ...]:
    found: set[date] = set()
    for pattern, order in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            a, b, c = m.groups()
            candidates: list[date | None] = []
            if order == "ymd":
                candidates.append(_safe_date(int(a), int(b), int(c)))
            elif order == "dmy":
                candidates.append(_safe_date(int(c), int(b), int(a)))
            elif order == "either":
                candidates += [_safe_date(int(c), int(a), int(b)), _safe_date(int(c), int(b), int(a))]
            elif order == "Mdy":
                candidates.append(_safe_date(int(c), _MONTHS[a.lower()], int(b)))
            else:
                candidates.append(_safe_date(int(c), _MONTHS[b.lower()], int(a)))
            found.update(d for d in candidates if d is not None)
    return tuple(sorted(found))


def _identifiers(text: str, shop_prefixes: tuple[str, ...]) -> tuple[str, ...]:
    dashed = re.sub(r"[\u2010-\u2015\u2212\uff0d]", "-", text)
    ids = {m.group(0) for m in _AMAZON.finditer(dashed)}
    prefixes = {"#", *shop_prefixes}
    for prefix in prefixes:
        if not prefix:
            continue
        for m in re.finditer(re.escape(prefix) + r"\s?(\d{1,12})(?!\d)", dashed):
            ids.add("#" + m.group(1))
    return tuple(sorted(ids))


def read_invoice(data: bytes, *, max_bytes: int, shop_prefixes: tuple[str, ...] = ()) -> InvoiceText:
    """The text facts of an invoice PDF; RecordError (field ``invoice_pdf``) when it is too
    large, not a PDF, encrypted, or carries no text (an image-only scan)."""
    if len(data) > max_bytes:
        raise RecordError(f"the invoice is larger than {max_bytes} bytes", field=FIELD)
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise RecordError("not a PDF file", field=FIELD)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise RecordError("an encrypted PDF cannot be read", field=FIELD)
        if len(reader.pages) > MAX_PAGES:
            raise RecordError(f"an invoice of at most {MAX_PAGES} pages", field=FIELD)
        text = "\n".join((page.extract_text() or "") for page in reader.pages)
    except RecordError:
        raise
    except Exception:  # pypdf raises many kinds on a damaged file: all mean "unreadable"
        raise RecordError("the PDF is damaged and cannot be read", field=FIELD) from None
    text = unicodedata.normalize("NFKC", text)
    if not text.strip():
        raise RecordError("the PDF has no text (an image-only scan cannot be read)", field=FIELD)
    compact = re.sub(r"[\s\-\u2010-\u2015\u2212〒]", "", text).upper()
    return InvoiceText(_identifiers(text, shop_prefixes), _dates(text), compact)
