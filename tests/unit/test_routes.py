"""The route table: device routes are tried first (a registration storm is most of the
traffic), which is only safe because no path matches two routes of the same method."""

from __future__ import annotations

import re

import pytest
from aiohttp import web

from opendps.api import device
from opendps.api.routes import ROUTES, resolve


def example(pattern: str) -> str:
    """A path the pattern matches: every group filled in with a plausible segment."""
    path = re.sub(r"\(\?P<collection>[^)]*\)", "enrollmentGroups", pattern)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: f"some-{m.group(1)}", path)
    return path.strip("^$").replace("/?", "")


@pytest.mark.parametrize("route", range(len(ROUTES)))
def test_each_route_is_the_only_one_of_its_method_for_its_paths(route: int) -> None:
    method, pattern, handler = ROUTES[route]
    path = example(pattern.pattern)
    assert pattern.match(path), path
    same_method = [i for i, (m, p, _) in enumerate(ROUTES) if m == method and p.match(path)]
    assert same_method == [route], path
    found = resolve(method, path)
    assert found is not None and found[0] is handler


def test_the_device_routes_are_matched_first() -> None:
    assert [handler for _, _, handler in ROUTES[:3]] == [
        device.register, device.operation_status, device.registration_status]
    assert resolve("PUT", "/0ne0000AB12/Registrations/dev-1/register") == (
        device.register, {"scope": "0ne0000AB12", "registration_id": "dev-1"})


def test_a_known_path_with_the_wrong_method_is_405_and_an_unknown_one_none() -> None:
    with pytest.raises(web.HTTPMethodNotAllowed):
        resolve("DELETE", "/0ne0000AB12/registrations/dev-1/register")
    assert resolve("GET", "/no/such/thing/here/at/all") is None
