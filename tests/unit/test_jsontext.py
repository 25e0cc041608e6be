"""``protocol.jsontext``: orjson where it can, the stdlib where it cannot, the same values."""

from __future__ import annotations

import json
import math

import pytest

from opendps.protocol import jsontext


@pytest.mark.parametrize("value", [
    {"a": 1, "b": [1.5, None, True, "é"], "c": {"d": "\u2603"}},
    [], {}, "text", 0, -1.25e-7,
])
def test_round_trip_is_the_stdlib_value(value: object) -> None:
    assert jsontext.loads(jsontext.dumps(value)) == value
    assert jsontext.loads(jsontext.dumpb(value)) == value
    assert json.loads(jsontext.dumps(value)) == value
    assert "\n" not in jsontext.dumps(value) and ", " not in jsontext.dumps(value)


def test_what_orjson_refuses_goes_through_the_stdlib() -> None:
    big = {"n": 2 ** 70, "m": -(2 ** 80)}  # beyond 64 bits: orjson refuses both ways
    assert jsontext.loads(jsontext.dumps(big)) == big
    assert jsontext.loads(jsontext.dumpb(big)) == big
    surrogate = {"s": "\ud800"}  # a lone surrogate, which json.loads accepts from "\\ud800"
    assert jsontext.loads(jsontext.dumps(surrogate)) == surrogate
    assert jsontext.dumps(surrogate) == '{"s":"\\ud800"}'
    assert jsontext.dumps({1: "int key"}) == '{"1":"int key"}'


def test_the_literals_the_stdlib_parser_accepts_still_parse() -> None:
    parsed = jsontext.loads('{"x": NaN, "y": Infinity}')
    assert math.isnan(parsed["x"]) and parsed["y"] == math.inf
    assert jsontext.loads('{"a":1}'.encode("utf-16")) == {"a": 1}  # stdlib detects UTF-16
    assert jsontext.loads(memoryview(b'{"a":2}')) == {"a": 2}


@pytest.mark.parametrize("text", ["", "{", "[1,]", "nul", b"\xff\xfe{"])
def test_not_json_raises_value_error_with_the_stdlib_message(text: str | bytes) -> None:
    with pytest.raises(ValueError) as caught:
        jsontext.loads(text)
    with pytest.raises(ValueError) as stdlib:
        json.loads(text)
    assert str(caught.value) == str(stdlib.value)


def test_values_json_cannot_hold_still_raise_type_error() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps({"x": object()})
    with pytest.raises(TypeError):
        jsontext.dumpb({"x": {1, 2}})
