"""The sans-IO parts of the CLI's CSV export and import."""

from __future__ import annotations

import uuid

import pytest

from webmacs.csv_export import content_disposition
from webmacs.csv_transfer import BadLine, RecordChecker, RecordCounter, experiment_name_from
from webmacs.validation import parse_timestamp


def test_record_counter_skips_line_breaks_inside_quotes() -> None:
    counter = RecordCounter()
    assert counter.feed(b"a,b\r\nc,d\r\n") == 2
    assert counter.feed(b'"x\r\ny",1\r\n"""q""",2\r\n"open\r\n') == 2
    assert counter.feed(b'still open",3\r\nplain,4\r\n') == 2
    assert counter.records == 6


@pytest.mark.parametrize("name", ["Run 42", "a/b", "plain"])
def test_an_exported_file_name_gives_the_experiment_name(name: str) -> None:
    disposition = content_disposition(name, str(uuid.uuid4()))
    filename = disposition.split('filename="')[1].split('"')[0]
    assert experiment_name_from(filename) == name.replace(" ", "_").replace("/", "-")
    assert experiment_name_from("/data/other.csv") == "other"


@pytest.mark.parametrize("raw", [
    "2020-01-01T00:00:00.000001+00:00", "2020-01-01T00:00:00,000001+00:00",
    "2020-01-01 00:00:00.000001+00:00", "2020-02-30T00:00:00.000001+00:00",
    "2020-01-01T00:00:00.000001+01:00", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00",
])
def test_timestamps_follow_the_rest_rule(raw: str) -> None:
    checker = RecordChecker()
    checker.feed(1, ["timestamp", "event_name", "event_public_id", "value", "unit", "datapoint_public_id"])
    fields = [raw, "e", str(uuid.uuid4()), "1.0", "K", str(uuid.uuid4())]
    expected = parse_timestamp(raw)
    if expected is None:
        with pytest.raises(BadLine):
            checker.feed(2, fields)
        return
    row = checker.feed(2, fields)
    assert row is not None and row.timestamp == expected
