"""The one client TLS factory: TLS 1.2+, host names checked, trusting the given CA.

Devices check the host name of the DPS endpoint and of ``assignedHub`` (protocol.md §2.4),
and so do we, so a certificate without the right SAN fails here as it would on a real device.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_ssl_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """Trust ``ca_file`` (a PEM bundle), or the system store when it is None."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
