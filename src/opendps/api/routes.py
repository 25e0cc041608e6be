"""One HTTPS listener serves every role; routes are matched case-insensitively on the decoded
path (SDKs differ in casing, §4.2) and by method."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import (
    certificates,
    deprovision,
    device,
    enrollments,
    events,
    hub_registry,
    linked_hubs,
    policies,
    registrations,
)
from .health import health as liveness
from .health import ready as readiness

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SEG = r"[^/]+"
_COLL = r"(?P<collection>enrollments|enrollmentgroups)"


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(pattern, re.IGNORECASE), handler)
    for method, pattern, handler in [
        # DPS device API first: a registration storm is most of the traffic, and each route
        # tried before the right one is a regex match per request (no two routes overlap)
        ("PUT", rf"^/(?P<scope>{_SEG})/registrations/(?P<registration_id>{_SEG})/register$",
         device.register),
        ("GET", rf"^/(?P<scope>{_SEG})/registrations/(?P<registration_id>{_SEG})/operations/"
                rf"(?P<operation_id>{_SEG})$", device.operation_status),
        ("POST", rf"^/(?P<scope>{_SEG})/registrations/(?P<registration_id>{_SEG})$",
         device.registration_status),
        # DPS service API
        ("POST", rf"^/{_COLL}/query$", enrollments.query),
        ("POST", rf"^/{_COLL}/(?P<id>{_SEG})/attestationmechanism$",
         enrollments.attestation_mechanism),
        ("GET", rf"^/{_COLL}/(?P<id>{_SEG})$", enrollments.get),
        ("PUT", rf"^/{_COLL}/(?P<id>{_SEG})$", enrollments.put),
        ("DELETE", rf"^/{_COLL}/(?P<id>{_SEG})$", enrollments.delete),
        ("POST", rf"^/{_COLL}$", enrollments.bulk),
        ("POST", rf"^/registrations/(?P<id>{_SEG})/query$", registrations.query),
        ("GET", rf"^/registrations/(?P<id>{_SEG})$", registrations.get),
        ("DELETE", rf"^/registrations/(?P<id>{_SEG})$", registrations.delete),
        # hub registry API
        ("GET", r"^/devices/?$", hub_registry.list_devices),
        ("GET", rf"^/devices/(?P<id>{_SEG})$", hub_registry.get_device),
        ("PUT", rf"^/devices/(?P<id>{_SEG})$", hub_registry.put_device),
        ("DELETE", rf"^/devices/(?P<id>{_SEG})$", hub_registry.delete_device),
        ("GET", rf"^/twins/(?P<id>{_SEG})$", hub_registry.get_twin),
        ("PATCH", rf"^/twins/(?P<id>{_SEG})$", hub_registry.update_twin),
        ("PUT", rf"^/twins/(?P<id>{_SEG})$", hub_registry.update_twin),
        # opendps's own
        ("GET", r"^/opendps/events$", events.stream),
        ("GET", r"^/opendps/health$", liveness),
        ("GET", r"^/opendps/ready$", readiness),
        ("GET", r"^/opendps/accesspolicies$", policies.list_policies),
        ("POST", rf"^/opendps/registrations/(?P<id>{_SEG})/deprovision$",
         deprovision.deprovision),
        ("GET", r"^/opendps/linkedhubs$", linked_hubs.list_hubs),
        ("PUT", rf"^/opendps/linkedhubs/(?P<host>{_SEG})$", linked_hubs.put_hub),
        ("DELETE", rf"^/opendps/linkedhubs/(?P<host>{_SEG})$", linked_hubs.delete_hub),
        ("GET", r"^/opendps/certificates$", certificates.list_certificates),
        ("GET", rf"^/opendps/certificates/(?P<name>{_SEG})$", certificates.get_certificate),
        ("PUT", rf"^/opendps/certificates/(?P<name>{_SEG})$", certificates.put_certificate),
        ("DELETE", rf"^/opendps/certificates/(?P<name>{_SEG})$",
         certificates.delete_certificate),
        ("POST", rf"^/opendps/certificates/(?P<name>{_SEG})/generateverificationcode$",
         certificates.generate_verification_code),
        ("POST", rf"^/opendps/certificates/(?P<name>{_SEG})/verify$",
         certificates.verify_certificate),
        ("PUT", rf"^/opendps/accesspolicies/(?P<name>{_SEG})$", policies.put_policy),
    ]
]


def resolve(method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
    """The handler and path parameters, or None; raises 405 when only the method is wrong."""
    path_matched = False
    for route_method, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        if route_method == method:
            return handler, match.groupdict()
        path_matched = True
    if path_matched:
        raise web.HTTPMethodNotAllowed(method, [])
    return None
