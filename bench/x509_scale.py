"""Does X.509 provisioning cost grow with the number of enrollments? (issue 3)

Runs the same registrations (a new TLS connection with a client certificate, PUT register,
GET operation status) against a server holding 10 individual X.509 enrollments and one holding
100,000, and reports server CPU per registration and the ratio. The TLS layer keeps no trust
store and enrollments are found by registration ID, so the ratio should stay near 1.

    python bench/x509_scale.py [--enrollments 100000] [--registrations 300]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import shutil
import ssl
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).parent))
import _server

API = "2019-03-31"
DEVICES = 10


def self_signed(cn: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


async def seed(data_dir: Path, devices: list[tuple[str, str, str]], filler: int) -> None:
    """Write enrollments straight into the store: one transaction for the filler rows."""
    import uuid

    from opendps.protocol.enrollment import validate_individual
    from opendps.store import open_store
    from opendps.store.tables import individual_enrollments

    store = await open_store(f"sqlite:///{data_dir / 'opendps.db'}")
    try:
        for reg_id, cert_pem, _ in devices:
            doc = validate_individual({"registrationId": reg_id, "attestation": {
                "type": "x509", "x509": {"clientCertificates": {
                    "primary": {"certificate": cert_pem}}}}}, reg_id)
            await store.put_enrollment("individual", reg_id, doc, if_match=None,
                                       attestation_type="x509", enabled=True)
        if filler:
            template = validate_individual({"registrationId": "filler", "attestation": {
                "type": "x509", "x509": {"clientCertificates": {
                    "primary": {"certificate": self_signed("filler")[0]}}}}}, "filler")
            now = dt.datetime.now(dt.UTC)
            rows = []
            for i in range(filler):
                reg_id = f"filler-{i:07d}"
                rows.append({"key_lower": reg_id, "key": reg_id,
                             "doc": dict(template, registrationId=reg_id),
                             "etag": uuid.uuid4().hex, "created": now, "updated": now,
                             "attestation_type": "x509", "enabled": True})
            async with store.engine.begin() as conn:
                for start in range(0, len(rows), 5000):
                    await conn.execute(individual_enrollments.insert(), rows[start:start + 5000])
    finally:
        await store.close()


def run_case(tmp: Path, filler: int, registrations: int, devices) -> dict:  # type: ignore[no-untyped-def]
    data_dir = tmp / f"case-{filler}"
    server = _server.start(data_dir)  # first start creates the instance and schema
    server.stop()
    asyncio.run(seed(data_dir, devices, filler))
    server = _server.start(data_dir)
    try:
        info = json.loads((data_dir / "info.json").read_text())
        scope, ca = info["idScope"], info["caCertificate"]

        def one(i: int) -> float:
            reg_id, _, files = devices[i % len(devices)]
            cert_file, key_file = files.split("|")
            started = time.perf_counter()
            ctx = ssl.create_default_context(cafile=ca)
            ctx.load_cert_chain(cert_file, key_file)
            conn = http.client.HTTPSConnection(server.host, 443, context=ctx, timeout=30)
            try:
                conn.request("PUT", f"/{scope}/registrations/{reg_id}/register"
                             f"?api-version={API}", json.dumps({"registrationId": reg_id}),
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                body = json.loads(resp.read())
                assert resp.status == 202, body
                conn.request("GET", f"/{scope}/registrations/{reg_id}/operations/"
                             f"{body['operationId']}?api-version={API}")
                resp = conn.getresponse()
                polled = json.loads(resp.read())
                assert polled["status"] == "assigned", polled
            finally:
                conn.close()
            return time.perf_counter() - started

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(50)))  # warm-up
            cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
            latencies = sorted(pool.map(one, range(registrations)))
            cpu1, wall1 = server.cpu_seconds(), time.perf_counter()
        return {
            "enrollments": filler + len(devices),
            "registrations": registrations,
            "server_cpu_ms_per_registration": 1000 * (cpu1 - cpu0) / registrations,
            "registrations_per_s": registrations / (wall1 - wall0),
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--registrations", type=int, default=300)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="opendps-x509-bench-"))
    try:
        devices = []
        for i in range(DEVICES):
            reg_id = f"bench-x509-{i:02d}"
            cert_pem, key_pem = self_signed(reg_id)
            cert_file, key_file = tmp / f"{reg_id}.pem", tmp / f"{reg_id}.key"
            cert_file.write_text(cert_pem)
            key_file.write_text(key_pem)
            devices.append((reg_id, cert_pem, f"{cert_file}|{key_file}"))
        small = run_case(tmp, 0, args.registrations, devices)
        large = run_case(tmp, args.enrollments - DEVICES, args.registrations, devices)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = large["server_cpu_ms_per_registration"] / small["server_cpu_ms_per_registration"]
    print(json.dumps({"small": small, "large": large, "cpu_ratio_large_to_small": ratio},
                     indent=2))


if __name__ == "__main__":
    main()
