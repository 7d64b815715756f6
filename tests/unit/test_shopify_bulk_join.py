"""The bulk join file: in the data directory (or the directory given), gone after use,
also when the reader stops early; each line parsed once."""

from __future__ import annotations

import json
from unittest import mock

from vipsync.config.settings import get_settings
from vipsync.connectors.shopify import bulk_jsonl
from vipsync.connectors.shopify.bulk_jsonl import assemble_bulk_orders, default_work_dir


def _lines(n: int = 3) -> list[tuple[int, bytes]]:
    out: list[dict] = []
    for i in range(1, n + 1):
        out.append({"id": f"gid://shopify/Order/{i}", "name": f"#{i}"})
        out.append(
            {"id": f"gid://shopify/LineItem/{i}", "sku": "S", "__parentId": f"gid://shopify/Order/{i}"}
        )
    return [(k, json.dumps(o).encode()) for k, o in enumerate(out, start=1)]


def test_join_file_lives_in_the_work_dir_while_reading_and_is_removed_after(tmp_path):
    work = tmp_path / "work"
    seen: list[list[str]] = []
    for _node in assemble_bulk_orders(_lines(), work_dir=work):
        seen.append([p.name for p in work.iterdir()])
    assert seen and all(len(names) == 1 and names[0].startswith("vipsync-bulk-") for names in seen)
    assert list(work.iterdir()) == []


def test_join_file_is_removed_when_the_reader_stops_early(tmp_path):
    work = tmp_path / "work"
    nodes = assemble_bulk_orders(_lines(), work_dir=work)
    assert next(nodes)["id"] == "gid://shopify/Order/1"
    assert len(list(work.iterdir())) == 1
    nodes.close()
    assert list(work.iterdir()) == []


def test_default_work_dir_is_under_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VIPSYNC_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        assert default_work_dir() == tmp_path / "data" / "downloads"
        assert [n["id"] for n in assemble_bulk_orders(_lines(2))] == [
            "gid://shopify/Order/1",
            "gid://shopify/Order/2",
        ]
        assert list((tmp_path / "data" / "downloads").iterdir()) == []
    finally:
        get_settings.cache_clear()


def test_each_line_is_parsed_once(tmp_path):
    lines = _lines(4)
    with mock.patch.object(bulk_jsonl.json, "loads", wraps=json.loads) as loads:
        nodes = list(assemble_bulk_orders(lines, work_dir=tmp_path))
    assert len(nodes) == 4 and all(len(n["lineItems"]) == 1 for n in nodes)
    assert loads.call_count == len(lines)
