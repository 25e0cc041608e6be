"""A custom allocation webhook: the Python twin of Azure's toaster / heat-pump tutorial function
("How to use custom allocation policies", ``run.csx``).

The rule, as in the tutorial:

- a registration ID containing ``-contoso-tstrsd-007`` (Contoso Toasters Division) goes to the
  linked hub whose host name contains ``-toasters-``, with tag ``deviceType: toaster`` and desired
  ``state: ready``, ``darknessSetting: medium``;
- one containing ``-contoso-hpsd-088`` (Contoso Heat Pumps Division) goes to the linked hub whose
  host name contains ``-heatpumps-``, with tag ``deviceType: heatpump`` and desired ``state: on``,
  ``temperatureSetting: "65"``;
- anything else gets HTTP 400 ``Unrecognized device registration.``, which DPS reports to the
  device as ``CustomAllocationFailed`` (400207), ``Custom allocation failed with status code: 400``.

The reply also carries ``payload`` (``{"sampleResponse": …}``): DPS hands it to the device as
``registrationState.payload``, so a flow can be checked end to end.

Run it::

    python examples/custom_allocation_webhook.py --port 8080
    python examples/custom_allocation_webhook.py --port 8443 --cert server.pem --key server.key

and point an enrollment's ``customAllocationDefinition.webhookUrl`` at
``http://127.0.0.1:8080/api/allocate`` (any path is accepted, by POST or PUT: the portal text
says PUT, today's docs say POST).
"""

from __future__ import annotations

import argparse
import json
import logging
import ssl
from typing import Any

from aiohttp import web

TOASTER_SUFFIX = "-contoso-tstrsd-007"
# The seed's copy of the sample tests for "-contoso-hpsd-008", but the tutorial's devices are
# named "...-contoso-hpsd-088" (and the doc shows them provisioned): a doc bug. We follow the
# intended behaviour and match 088.
HEATPUMP_SUFFIX = "-contoso-hpsd-088"

log = logging.getLogger("custom_allocation_webhook")


def _bad_request(message: str) -> web.Response:
    # the Azure Function answers BadRequestObjectResult(message): 400 with the plain text
    log.info("rejected: %s", message)
    return web.Response(status=400, text=message)


def _pick(hubs: list[str], match: str) -> str | None:
    # run.csx loops over every hub and keeps the last match; so do we
    found = None
    for hub in hubs:
        if isinstance(hub, str) and match in hub:
            found = hub
    return found


def make_app(
    toaster_match: str = "-toasters-",
    heatpump_match: str = "-heatpumps-",
    *,
    toaster_suffix: str = TOASTER_SUFFIX,
    heatpump_suffix: str = HEATPUMP_SUFFIX,
) -> web.Application:
    """The webhook as an aiohttp app. ``*_match`` are the host-name substrings that pick a hub
    from ``linkedHubs``; ``*_suffix`` the registration-ID substrings that name a device type."""
    devices = (
        (toaster_suffix, toaster_match, "toaster", "No toasters hub found for the enrollment.",
         {"state": "ready", "darknessSetting": "medium"}),
        (heatpump_suffix, heatpump_match, "heatpump", "No heat pumps hub found for the enrollment.",
         {"state": "on", "temperatureSetting": "65"}),
    )

    async def allocate(request: web.Request) -> web.Response:
        try:
            data: Any = json.loads(await request.read())
        except ValueError:
            return _bad_request("Uncaught error")
        data = data if isinstance(data, dict) else {}
        context = data.get("deviceRuntimeContext") or {}
        reg_id = context.get("registrationId") if isinstance(context, dict) else None
        if not isinstance(reg_id, str):
            return _bad_request("Registration ID not provided for the device.")
        hubs = data.get("linkedHubs")
        if not isinstance(hubs, list):
            return _bad_request("No hub group defined for the enrollment.")
        for suffix, match, device_type, no_hub, desired in devices:
            if suffix not in reg_id:
                continue
            hub = _pick(hubs, match)
            if hub is None:
                return _bad_request(no_hub)
            answer = {
                "iotHubHostName": hub,
                "initialTwin": {"tags": {"deviceType": device_type},
                                "properties": {"desired": desired}},
                "payload": {"sampleResponse": f"{device_type} {reg_id} allocated to {hub}",
                            "devicePayload": context.get("payload")},
            }
            log.info("%s -> %s", reg_id, hub)
            return web.json_response(answer)
        return _bad_request("Unrecognized device registration.")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", allocate)
    app.router.add_route("PUT", "/{tail:.*}", allocate)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--cert", help="server certificate (PEM) to serve HTTPS")
    parser.add_argument("--key", help="the certificate's private key (PEM)")
    parser.add_argument("--toaster-hub-match", default="-toasters-")
    parser.add_argument("--heatpump-hub-match", default="-heatpumps-")
    args = parser.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    web.run_app(make_app(args.toaster_hub_match, args.heatpump_hub_match),
                host=args.host, port=args.port, ssl_context=context)


if __name__ == "__main__":
    main()
