"""SAS parsing and verification: every SDK's spelling, and a fuzzed parser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendps.protocol import sas

KEY = base64.b64encode(b"k" * 32).decode()
RESOURCE = "0ne00ABC123/registrations/dev-01"


def _sig(sr_raw: str, se: int, key: str = KEY) -> str:
    return base64.b64encode(hmac.new(base64.b64decode(key), f"{sr_raw}\n{se}".encode(),
                                     hashlib.sha256).digest()).decode()


def test_documented_group_key_vector() -> None:
    key = ("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9"
           "Egw==")
    assert (sas.derive_device_key(key, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
            == "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=")


@pytest.mark.parametrize("spelling", ["python", "node", "lower-hex", "plus-raw"])
def test_each_sdk_spelling_verifies(spelling: str) -> None:
    se = 2_000_000_000
    if spelling == "python":
        sr = urllib.parse.quote(RESOURCE, safe="")
        sig = urllib.parse.quote(_sig(sr, se), safe="")
        token = f"SharedAccessSignature sr={sr}&sig={sig}&se={se}"
    elif spelling == "node":
        sr = RESOURCE
        token = (f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(_sig(sr, se), safe='')}"
                 f"&skn=registration&se={se}")
    elif spelling == "lower-hex":
        sr = urllib.parse.quote(RESOURCE, safe="").replace("%2F", "%2f")
        sig = urllib.parse.quote(_sig(sr, se), safe="")
        token = f"SharedAccessSignature se={se}&skn=registration&sr={sr}&sig={sig}"
    else:
        sr = RESOURCE
        token = f"SharedAccessSignature sr={sr}&sig={_sig(sr, se)}&se={se}"
    parsed = sas.parse(token)
    sas.check_claims(parsed, RESOURCE.upper().replace("REGISTRATIONS", "registrations"), 1.0)
    assert sas.signature_matches(parsed, [KEY])
    assert not sas.signature_matches(parsed, [base64.b64encode(b"x" * 32).decode()])


def test_expired_and_other_resource() -> None:
    token = sas.parse(sas.generate(RESOURCE, KEY, ttl=10, now=1000))
    with pytest.raises(sas.SasError, match="expired"):
        sas.check_claims(token, RESOURCE, 2000)
    with pytest.raises(sas.SasError, match="another resource"):
        sas.check_claims(token, "0ne00ABC123/registrations/other", 1000)


def test_tampered_expiry_fails_signature() -> None:
    token = sas.generate(RESOURCE, KEY, ttl=10, now=1000)
    forged = sas.parse(token.replace("se=1010", "se=9999999999"))
    assert not sas.signature_matches(forged, [KEY])


@pytest.mark.parametrize("bad", [
    "", "Bearer x", "SharedAccessSignature ", "SharedAccessSignature sr=a&sig=b",
    "SharedAccessSignature sr=a&sig=%%%&se=1", "SharedAccessSignature sr=a&sig=AAAA&se=soon",
    "SharedAccessSignature sr=a&sr=b&sig=AAAA&se=1", "SharedAccessSignature sr&sig=AAAA&se=1",
    "SharedAccessSignature " + "x" * 5000,
])
def test_malformed_tokens_are_sas_errors(bad: str) -> None:
    with pytest.raises(sas.SasError):
        sas.parse(bad)


def test_error_messages_never_contain_secrets() -> None:
    token = sas.generate(RESOURCE, KEY, ttl=-1)
    parsed = sas.parse(token)
    with pytest.raises(sas.SasError) as err:
        sas.check_claims(parsed, RESOURCE, 10**10)
    assert KEY not in str(err.value) and parsed.sig.hex() not in str(err.value)


@given(st.text(max_size=300))
def test_parser_fuzz_only_raises_sas_error(text: str) -> None:
    try:
        token = sas.parse(text)
    except sas.SasError:
        return
    assert isinstance(token.expiry, int)
    sas.signature_matches(token, [KEY])


@given(st.dictionaries(st.sampled_from(["sr", "sig", "se", "skn", "x"]),
                       st.text(alphabet=st.characters(blacklist_characters="&"), max_size=40),
                       max_size=5))
def test_parser_fuzz_fields_in_any_order(fields: dict[str, str]) -> None:
    text = "SharedAccessSignature " + "&".join(f"{k}={v}" for k, v in fields.items())
    try:
        sas.parse(text)
    except sas.SasError:
        pass


_ESCAPED = st.lists(st.one_of(
    st.sampled_from(["%", "%2F", "%2f", "%2B", "%3D", "%3d", "%C3%A9", "%E2%82%AC", "%ZZ", "%4",
                     "%00", "%7F", "%80", "%ff", "+", "/", "é"]),
    st.text(max_size=4)), max_size=10).map("".join)


@given(_ESCAPED)
def test_percent_decoding_is_unquotes(text: str) -> None:
    # the fast path for ASCII escapes must agree with urllib's unquote on everything
    assert sas._pct_decode(text) == urllib.parse.unquote(text)
