"""``opendps enrollment …``: individual enrollments (symmetric key, or X.509 with the device's
own certificate or an uploaded CA)."""

from __future__ import annotations

from ._enrollments import INDIVIDUAL, make_group

enrollment = make_group(INDIVIDUAL, "enrollment",
                        "Individual enrollments: create, show, list, update, delete.")
