"""The bounds of what the stored tables hold, free of SQLAlchemy so that the command line
(its argument types) states them without importing it."""

from __future__ import annotations

ID_MAX = 2**31 - 1
"""The largest run and track id: their columns (`sinks.sql.models`) are INTEGER, 32 bits in
PostgreSQL (a bigger value makes it fail the query, and the SQLite driver crashes past 64
bits)."""
CAMERA_MAX = 255
"""The longest camera id the tables' camera columns hold (VARCHAR(255))."""
LIMIT_MAX = 2**63 - 1
"""The largest row limit: what SQLite and PostgreSQL take as a LIMIT."""
TEXT_PATTERN = r"^[^\x00]*$"
"""Text the tables' string columns (camera, label) hold: no NUL character, which
PostgreSQL's text cannot hold and refuses in a query."""
