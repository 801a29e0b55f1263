"""decisions.csv (archive_twins/deliver/decisions.py): what a spreadsheet may do to the file is
read, the latest decision per key wins, and a malformed file is refused naming the
file, the line and the column."""

from __future__ import annotations

import pytest

from archive_twins.deliver.decisions import HEADER, DecisionError, read_decisions, resolve_path

A, B, C = "a" * 64, "B" * 64, "c" * 64


HEAD = ",".join(HEADER)


def write(tmp_path, rows, header=HEAD, **kw):
    path = tmp_path / "decisions.csv"
    text = header + "\r\n" + "".join(r + "\r\n" for r in rows)
    path.write_bytes(text.encode(kw.get("encoding", "utf-8")))
    return path


def test_a_spreadsheet_saved_file_is_read(tmp_path):
    rows = [
        f'{A},{B},"a, b.tif","two  spaces\nand a newline\u2028.jpg",copy,"said ""yes""",'
        "2025-01-01T10:00:00Z",
        f"{C},,Masters/c.tif,,Master,,2025-01-01T10:00:00+01:00",
        "",  # a blank line
        f"{B},{A},b,a,not_copy,,2025-01-02T00:00:00",  # the same pair, later: it wins
    ]
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf" + write(tmp_path, rows).read_bytes())
    got = read_decisions(path)
    assert [(d.decision, d.line) for d in got] == [("master", 4), ("not_copy", 6)]
    master = got[0]
    assert (master.sha1, master.filename1, master.sha2) == (C, "Masters/c.tif", "")
    first = read_decisions(write(tmp_path, rows[:1]))[0]
    assert first.sha2 == B.lower() and first.filename2 == "two  spaces\nand a newline\u2028.jpg"
    assert first.note == 'said "yes"' and first.filename1 == "a, b.tif"


def test_columns_in_another_order_and_extra_columns_are_read(tmp_path):
    header = "decision,note,decided_at,sha256_2,sha256_1,filename_1,filename_2,curator"
    (d,) = read_decisions(write(tmp_path, [f"redundant,,,,{A},x.tif,,me"], header=header))
    assert (d.decision, d.sha1, d.decided_at) == ("redundant", A, "")


@pytest.mark.parametrize(
    ("rows", "header", "where"),
    [
        (
            [],
            "sha256_1,sha256_2,filename_1,filename_2,decision,note",
            "line 1, column 7 (decided_at)",
        ),
        ([f"{A[:-1]},{B},a,b,copy,,"], None, "line 2, column 1 (sha256_1)"),
        ([f"{A},{B},a,b,copy,,", f"{A},xyz,a,b,copy,,"], None, "line 3, column 2 (sha256_2)"),
        ([f"{A},{B},a,b,duplicate,,"], None, "line 2, column 5 (decision)"),
        ([f"{A},{B},a,b,master,,"], None, "line 2, column 2 (sha256_2)"),
        ([f"{A},{A},a,a,copy,,"], None, "line 2, column 2 (sha256_2)"),
        ([f"{A},{B},a,b,copy,,01/05/2024 10:00"], None, "line 2, column 7 (decided_at)"),
        ([f"{A},{B},a,b,copy"], None, "line 2: 5 fields"),
        ([f'{A},{B},"a\nb",b,copy,,', f"{A},{C},a,b,cpy,,"], None, "line 4, column 5 (decision)"),
    ],
)
def test_a_malformed_file_names_file_line_and_column(tmp_path, rows, header, where):
    path = write(tmp_path, rows, header=header or ",".join(HEADER))
    with pytest.raises(DecisionError) as exc:
        read_decisions(path)
    assert str(exc.value).startswith(f"decisions file {path}, {where}")


def test_a_file_the_csv_reader_cannot_read_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, [f"{A},,a.tif,,master,,", f"{A},,b.tif,,master,{'x' * 200_000},"])
    with pytest.raises(DecisionError, match=r", line 3: field larger than field limit"):
        read_decisions(path)


def test_not_utf8_and_empty_files_are_refused(tmp_path):
    path = write(tmp_path, [f"{A},,caf\xe9.tif,,master,,"], encoding="latin-1")
    with pytest.raises(DecisionError, match=r", line 2: not UTF-8"):
        read_decisions(path)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DecisionError, match=r"empty.csv, line 1: empty"):
        read_decisions(tmp_path / "empty.csv")


def test_the_default_file_is_the_results_own_when_it_exists(tmp_path):
    assert resolve_path("", tmp_path) is None
    (tmp_path / "decisions.csv").write_text(",".join(HEADER) + "\n")
    assert resolve_path("", tmp_path) == tmp_path / "decisions.csv"
    assert resolve_path(str(tmp_path / "decisions.csv"), "/elsewhere") == tmp_path / "decisions.csv"
    with pytest.raises(DecisionError, match="not found"):
        resolve_path(str(tmp_path / "missing.csv"), tmp_path)
