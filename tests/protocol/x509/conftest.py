"""Fixtures for the X.509 tests; the certificate builders live in ``x509_factory``."""

from __future__ import annotations

import pytest
from x509_factory import Hierarchy, hierarchy


@pytest.fixture(scope="session")
def pki() -> Hierarchy:
    """The usual root -> intermediate -> dev-01 chain (EC keys), built once per session."""
    return hierarchy()
