"""The CSV export prints values exactly as Python's shortest round-trip ``repr`` on every backend
(PostgreSQL formats them inside ``COPY``, so its SQL must agree with Python digit for digit)."""

from __future__ import annotations

from typing import Any

from conftest import create_event, create_experiment

# -0.0 is left out: SQLite stores integral reals as integers and so loses the sign of zero.
VALUES = [
    0.0, 1.0, -1.0, 2.0, 1.5, -0.001, 0.1 + 0.2, 1e-05, 0.0001, 123456789012345.6,
    1e14, 1e15, -1e15, 1234567890123456.8, 9999999999999998.0, 1e16, -1.5e16, 1.5e300, 1e-300,
    5e-324, 1.7976931348623157e308, 100.0, 12345.678,
]


async def test_export_values_match_python_repr(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers, name='odd, "quoted"\nname')
    experiment = await create_experiment(client, admin_headers)
    # No timestamps: every reading is stamped with the running experiment, in insertion order.
    items = [{"value": v, "event_public_id": event} for v in VALUES]
    resp = await client.post("/api/v1/datapoints/batch", json={"datapoints": items},
                             headers=admin_headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    export = await client.get(f"/api/v1/experiments/{experiment}/export/csv", headers=admin_headers)
    assert export.status_code == 200
    body = (await export.get_data()).decode("utf-8")
    assert body.startswith("timestamp,event_name,event_public_id,value,unit,datapoint_public_id\r\n")
    records = body.split('"odd, ""quoted""\nname",')[1:]
    assert len(records) == len(VALUES)
    printed = [r.split(",")[1] for r in records]
    assert printed == [repr(float(v)) for v in VALUES]
    # Record terminators are CRLF; the line feed inside the quoted name is kept as sent.
    assert body.count("\r\n") == len(VALUES) + 1
    assert body.count("\n") == 2 * len(VALUES) + 1
