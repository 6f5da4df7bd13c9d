"""One declaration per request field, read by the validator and rendered by the OpenAPI builder.

A limit written in two places drifts: the API description once promised passwords of 72
*characters* while bcrypt stops at 72 *bytes*, and accepted NUL characters the database cannot
store. Each body is therefore a :class:`BodySpec`; :func:`webmacs.validation.read_body` enforces it
and :mod:`webmacs.http.openapi` renders it, so a changed limit changes both.

Rules that span fields (``min_value <= max_value``, ``since`` before ``until``) cannot be written
in JSON Schema: they are listed in :attr:`BodySpec.rules` with the exact ``msg`` of their 422, and
the document quotes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

Kind = Literal["text", "password", "email", "number", "boolean", "choice", "choices", "timestamp"]


@attrs.frozen
class FieldSpec:
    """A body field. ``text`` refuses NUL characters (PostgreSQL cannot store them); ``password``
    accepts them but is capped in UTF-8 bytes (bcrypt); ``email`` follows the contract's rule."""

    name: str
    kind: Kind
    min_len: int = 0
    max_len: int | None = None
    max_bytes: int | None = None
    options: tuple[str, ...] = ()
    description: str = ""


@attrs.frozen
class BodySpec:
    """A JSON body: its fields in reading order, which are required, and the cross-field rules.

    An optional field may always be ``null``: the reader treats ``null`` as absent.
    """

    name: str
    fields: tuple[FieldSpec, ...]
    required: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    description: str = ""
    example: Mapping[str, Any] | None = None

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    def updating(self, name: str, example: Mapping[str, Any], description: str = "",
                 rules: tuple[str, ...] | None = None) -> BodySpec:
        """The PUT body of a create body: every field optional (omitted or ``null`` = unchanged)."""
        return BodySpec(name, self.fields, (), self.rules if rules is None else rules, description,
                        example)
