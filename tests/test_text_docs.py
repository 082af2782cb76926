"""docs/server.md's table of spoken forms is what the front end says (so the page cannot drift from it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wyoming_ishowtts.text import spoken

DOC = Path(__file__).resolve().parents[1] / "docs" / "server.md"
ROW = re.compile(r"^\| (?P<language>en|zh) \| `` (?P<written>.+?) `` \| (?P<spoken>.*) \|$")


def _unescape(cell: str) -> str:
    return cell.replace("\\|", "|").replace("\\n", "\n")


ROWS = [m.groupdict() for line in DOC.read_text(encoding="utf-8").splitlines() if (m := ROW.match(line))]


def test_the_table_has_rows_in_both_languages() -> None:
    assert {row["language"] for row in ROWS} == {"en", "zh"} and len(ROWS) >= 12


@pytest.mark.parametrize("row", ROWS, ids=[row["written"][:40] for row in ROWS])
def test_each_example_is_what_the_front_end_says(row: dict[str, str]) -> None:
    assert spoken(_unescape(row["written"]), row["language"]) == _unescape(row["spoken"])
