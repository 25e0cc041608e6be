"""``opendps enrollment-group …``: enrollment groups (symmetric key, devices derive keys; or
X.509, devices present certificates signed by the group's CA).

``enrollment-group registration list|show|delete`` mirrors ``az iot dps enrollment-group
registration``; the commands are ``opendps registration``'s own, so both spellings agree."""

from __future__ import annotations

from . import registration as registration_cli
from ._enrollments import GROUP, make_group

enrollment_group = make_group(GROUP, "enrollment-group",
                              "Enrollment groups: create, show, list, update, delete; the "
                              "registrations of their devices.")


@enrollment_group.group("registration")
def registration() -> None:
    """Registration states of a group's devices (as 'opendps registration')."""


registration.add_command(registration_cli.list_cmd, "list")
registration.add_command(registration_cli.show_cmd, "show")
registration.add_command(registration_cli.delete, "delete")
