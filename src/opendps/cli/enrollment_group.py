"""``opendps enrollment-group …``: enrollment groups (symmetric key; devices derive keys)."""

from __future__ import annotations

from ._enrollments import GROUP, make_group

enrollment_group = make_group(GROUP, "enrollment-group",
                              "Enrollment groups: create, show, list, update, delete.")
