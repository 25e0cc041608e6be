"""``opendps enrollment …``: individual enrollments (symmetric key)."""

from __future__ import annotations

from ._enrollments import INDIVIDUAL, make_group

enrollment = make_group(INDIVIDUAL, "enrollment",
                        "Individual enrollments: create, show, list, update, delete.")
