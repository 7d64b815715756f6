"""Invoice PDFs read with pypdf (generated here with fpdf2) and the one e-mail
normalization: order identifiers, dates in the stores' formats, refusals naming the field."""

from __future__ import annotations

from datetime import date

import pytest
from fpdf import FPDF

from vipsync.connectors.files.invoice import read_invoice
from vipsync.connectors.records import normalize_email
from vipsync.errors import RecordError


def _pdf(*lines: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    for line in lines:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


@pytest.mark.parametrize(
    "line, expected",
    [
        ("Order date: 2026-03-05", date(2026, 3, 5)),
        ("Bestelldatum: 05.03.2026", date(2026, 3, 5)),
        ("Date: March 5, 2026", date(2026, 3, 5)),
        ("Datum: 5. Maerz 2026", date(2026, 3, 5)),
        ("Date de commande : 5 mars 2026", date(2026, 3, 5)),
        ("Order placed 2026/03/05", date(2026, 3, 5)),
    ],
)
def test_an_invoice_date_is_read_in_each_store_format(line, expected):
    text = read_invoice(_pdf("Order #1001", line, "40202"), max_bytes=1_000_000)
    assert expected in text.dates


def test_an_ambiguous_slash_date_gives_both_readings():
    dates = read_invoice(_pdf("Order #1001", "03/05/2026"), max_bytes=1_000_000).dates
    assert {date(2026, 3, 5), date(2026, 5, 3)} <= set(dates)


def test_identifiers_and_the_postal_code_are_found_in_the_text():
    text = read_invoice(
        _pdf("Amazon.de invoice", "Order number 302-1234567-7654321", "10115 Berlin"), max_bytes=1_000_000
    )
    assert text.identifiers == ("302-1234567-7654321",)
    assert "10115" in text.compact
    shop = read_invoice(_pdf("TS1001 receipt"), max_bytes=1_000_000, shop_prefixes=("TS",))
    assert shop.identifiers == ("#1001",)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a PDF"),
        (b"GIF89a....", "not a PDF"),
        (b"%PDF-1.4\n%%EOF", "damaged"),
    ],
)
def test_a_broken_invoice_is_a_record_error_naming_the_field(data, message):
    with pytest.raises(RecordError) as err:
        read_invoice(data, max_bytes=1_000_000)
    assert err.value.field == "invoice_pdf" and message in str(err.value)


def test_an_oversize_invoice_is_refused_before_it_is_read():
    with pytest.raises(RecordError, match="larger than"):
        read_invoice(_pdf("Order #1001"), max_bytes=100)


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("  Ann.Lee+VIP@Example.COM ", "ann.lee+vip@example.com"),
        ("kunde@B\u00fccher.de", "kunde@xn--bcher-kva.de"),
        ("Cafe\u0301@example.com", "caf\u00e9@example.com"),
        ("", None),
    ],
)
def test_one_email_normalization_for_orders_members_and_factors(raw, normalized):
    assert normalize_email(raw) == normalized
