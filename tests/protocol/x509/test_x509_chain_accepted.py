"""verify_chain accepts: the shapes of chain Azure DPS accepts, and which anchor decides."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from x509_factory import (
    CA_USAGE,
    Hierarchy,
    KeyType,
    hierarchy,
    intermediate,
    leaf,
    make,
    root,
)
from x509_verify import GROUP_KEY, ROOT_ANCHOR_KEY, accept, anchor


@pytest.mark.parametrize("key_type", ["rsa", "ec", "ed25519"])
def test_full_chain_to_a_verified_root(key_type: KeyType) -> None:
    h = hierarchy(key_type)
    result = accept([h.device, h.intermediate, h.root], [anchor(h.root)],
                    registration_id="dev-01")
    assert result.anchor == anchor(h.root)
    assert result.path == [h.device.cert, h.intermediate.cert, h.root.cert]
    assert result.leaf == h.device.cert


def test_the_most_specific_anchor_wins(pki: Hierarchy) -> None:
    anchors = [anchor(pki.root), anchor(pki.intermediate, GROUP_KEY)]
    result = accept([pki.device, pki.intermediate, pki.root], anchors)
    assert result.anchor.key == GROUP_KEY
    assert result.path == [pki.device.cert, pki.intermediate.cert]


def test_anchor_on_the_intermediate_with_leaf_and_intermediate_presented(pki: Hierarchy) -> None:
    result = accept([pki.device, pki.intermediate], [anchor(pki.intermediate, GROUP_KEY)])
    assert result.anchor.key == GROUP_KEY


def test_anchor_on_an_intermediate_the_device_did_not_send(pki: Hierarchy) -> None:
    result = accept([pki.device], [anchor(pki.intermediate, GROUP_KEY)])
    assert result.path == [pki.device.cert, pki.intermediate.cert]


def test_anchor_on_the_root_which_the_device_did_not_send(pki: Hierarchy) -> None:
    result = accept([pki.device, pki.intermediate], [anchor(pki.root)])
    assert result.anchor.key == ROOT_ANCHOR_KEY
    assert result.path == [pki.device.cert, pki.intermediate.cert, pki.root.cert]


def test_leaf_signed_directly_by_the_root_anchor(pki: Hierarchy) -> None:
    device = leaf("dev-direct", pki.root)
    result = accept([device], [anchor(pki.root)], registration_id="dev-direct")
    assert result.path == [device.cert, pki.root.cert]


def test_intermediates_out_of_order_and_duplicated() -> None:
    top = root("Order Root")
    first = intermediate("Order Intermediate 1", top)
    second = intermediate("Order Intermediate 2", first)
    device = leaf("dev-order", second)
    presented = [device, top, first, second, first, device]
    result = accept(presented, [anchor(top)])
    assert result.path == [device.cert, second.cert, first.cert, top.cert]


def test_anchor_matches_by_subject_and_key_when_reissued_with_another_serial(
    pki: Hierarchy,
) -> None:
    reissued = root("Contoso Root", serial=4242, not_after=timedelta(days=3650))
    assert reissued.cert != pki.root.cert
    assert reissued.cert.public_key() == pki.root.cert.public_key()
    result = accept([pki.device, pki.intermediate, pki.root], [anchor(reissued)])
    assert result.anchor.certificate == reissued.cert
    assert result.path[-1] == reissued.cert


def test_an_expired_copy_presented_is_replaced_by_the_valid_anchor(pki: Hierarchy) -> None:
    old = root("Contoso Root", not_before=timedelta(days=-400), not_after=timedelta(days=-30))
    result = accept([pki.device, pki.intermediate, old], [anchor(old, "ca:old"), anchor(pki.root)])
    assert result.anchor.key == ROOT_ANCHOR_KEY


def test_common_name_compares_case_insensitively(pki: Hierarchy) -> None:
    accept([pki.device, pki.intermediate], [anchor(pki.root)], registration_id="DEV-01")


def test_common_name_of_exactly_64_characters(pki: Hierarchy) -> None:
    cn = "d" * 64
    accept([leaf(cn, pki.intermediate), pki.intermediate], [anchor(pki.root)], registration_id=cn)


def test_pathlen_is_honoured_when_large_enough() -> None:
    top = root("Pathlen One Root", pathlen=1)
    middle = intermediate("Pathlen One Intermediate", top)
    accept([leaf("dev-p1", middle), middle], [anchor(top)])


def test_pathlen_zero_allows_a_leaf_directly_below() -> None:
    top = root("Pathlen Zero Root", pathlen=0)
    accept([leaf("dev-p0", top)], [anchor(top)])


def test_self_issued_intermediates_do_not_count_against_pathlen() -> None:
    # Key rollover: the root's new key certified by the old one, under the same name.
    top = root("Rollover Root", pathlen=0)
    rolled = make("Rollover Root", top, key_label="rollover-new-key", ca=True, usage=CA_USAGE)
    device = leaf("dev-rolled", rolled)
    result = accept([device, rolled], [anchor(top)])
    assert result.path == [device.cert, rolled.cert, top.cert]


def test_leaf_without_extended_key_usage_or_with_any_purpose_is_accepted(pki: Hierarchy) -> None:
    plain = leaf("dev-plain", pki.intermediate, eku=None, usage=None)
    anyone = leaf("dev-any", pki.intermediate, eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    for device in (plain, anyone):
        accept([device, pki.intermediate], [anchor(pki.root)])


