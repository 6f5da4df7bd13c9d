"""Sans-IO parts of the CSV export (§4.3): the header row and an RFC 6266 Content-Disposition."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_NOT_PORTABLE = re.compile(r"[^A-Za-z0-9._-]")
HEADER = ("timestamp", "event_name", "event_public_id", "value", "unit", "datapoint_public_id")


def header_line() -> bytes:
    return (",".join(HEADER) + "\r\n").encode("ascii")


def display_name(name: str) -> str:
    out = []
    for ch in name:
        if ch in "/\\":
            out.append("-")
        elif ch.isspace():
            out.append("_")
        elif unicodedata.category(ch) in ("Cc",):
            continue
        else:
            out.append(ch)
    return "".join(out)


def content_disposition(name: str, public_id: str) -> str:
    shown = display_name(name)
    short = public_id[:8]
    # §4.3: every character outside A-Z a-z 0-9 . _ - becomes one "_" (`€uro` -> `_uro`, never
    # dropped), so the ASCII name keeps the display name's length and shape; filename* has the rest.
    ascii_name = _NOT_PORTABLE.sub("_", shown)
    utf8 = quote(f"experiment_{shown}_{short}.csv", safe="")
    return f"attachment; filename=\"experiment_{ascii_name}_{short}.csv\"; filename*=UTF-8''{utf8}"
