"""A lean asyncio load generator for ``opendps bench`` and ``bench/run_all.py``.

One event loop (uvloop when installed: ``run``) drives many simulated devices with our own
clients (no SDKs, no threads), and server cost is read from ``/proc`` so the same figures come
out for opendps and for the reference servers it is compared with.
"""

from .devices import DeviceFleet, Identity
from .hub import HubDevice, HubTarget, provision, run_idle, run_telemetry
from .loop import run
from .register import RegisterLoad, RegisterTarget, run_register
from .stats import ProcessMeter, Recorder

__all__ = [
    "DeviceFleet",
    "HubDevice",
    "HubTarget",
    "Identity",
    "ProcessMeter",
    "Recorder",
    "RegisterLoad",
    "RegisterTarget",
    "provision",
    "run",
    "run_idle",
    "run_register",
    "run_telemetry",
]
