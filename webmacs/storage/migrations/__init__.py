"""Alembic's script directory: ``env.py``, the revision template and ``versions/``.

webmacs drives it from code (:mod:`webmacs.storage.migrate`); developers write a revision with
the ``alembic`` command configured in ``pyproject.toml`` (docs/operations.md, "Schema migrations").
"""
