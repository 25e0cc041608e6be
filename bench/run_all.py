"""Every benchmark of issue 5 in one invocation, each next to its reference, as ratios.

Starts a fresh ``opendps serve``, the floor server (our TLS + HTTP/MQTT stack, fixed answers),
nginx (fixed body, same certificate) and Mosquitto (TLS), each on its own loopback address,
runs the same load against each and prints a markdown table. On a noisy machine absolute
figures move; ratios measured minutes apart on the same machine move much less.

    python bench/run_all.py [--devices 1000] [--telemetry-devices 100] [--idle 2000]
                            [--workers N] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import _server
import references
import rounds

from opendps.client.loadgen import (
    DeviceFleet,
    HubDevice,
    HubTarget,
    RegisterLoad,
    RegisterTarget,
    provision,
    run,
    run_idle,
    run_register,
    run_telemetry,
)
from opendps.client.service import DpsServiceClient

AZURE_PER_UNIT = 16.7  # registrations/s per DPS unit (Azure's documented quota)
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem / 1024 / 1024:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.results: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, references.Reference | None] = {}
        self.server = _server.start(tmp / "data", workers=args.workers)
        self.info = json.loads((tmp / "data" / "info.json").read_text())

    def start_references(self) -> None:
        cert, key = references.tls_files(self.tmp / "data", self.tmp / "ref")
        ref = self.tmp / "ref"
        self.refs["floor"] = references.start_floor(cert, key, ref)
        self.refs["nginx"] = references.start_nginx(cert, key, ref)
        self.refs["mosquitto"] = references.start_mosquitto(cert, key, ref)

    def stop(self) -> None:
        for ref in self.refs.values():
            if ref is not None:
                ref.stop()
        self.server.stop()

    def target(self, where: str) -> tuple[RegisterTarget, list[int]]:
        host = self.server.host
        if where == "opendps":
            return RegisterTarget(host, self.info["idScope"]), self.server.pids()
        ref = self.refs[where]
        assert ref is not None
        return RegisterTarget(host, self.info["idScope"], connect_host=ref.host), ref.pids

    def service(self) -> DpsServiceClient:
        return DpsServiceClient.from_connection_string(self.info["serviceConnectionString"],
                                                       ca_file=self.info["caCertificate"])

    async def fleet(self, attestation: str, where: str) -> DeviceFleet:
        fleet = DeviceFleet.new(attestation, self.info["caCertificate"])
        if where == "opendps":
            async with self.service() as svc:
                await fleet.create_group(svc)
        return fleet

    async def register(self, name: str, where: str, transport: str, attestation: str,
                       devices: int, rate: float | None = None) -> dict[str, Any]:
        target, pids = self.target(where)
        fleet = await self.fleet(attestation, where)
        load = RegisterLoad(transport, 50, None, self.args.concurrency, None, True)
        await run_register(target, load, fleet)  # warm-up: imports, caches, first connections
        load.devices, load.rate = devices, rate
        result = await run_register(target, load, fleet, server_pids=pids, first=50)
        fleet.cleanup()
        if where == "opendps":
            # every phase and round meets one symmetric-key group, not the ones before it
            # (a device's key is tried against each group until one matches)
            async with self.service() as svc:
                await svc.delete_enrollment_group(fleet.group_id)
        self.results[name] = result
        print(f"{name}: {result['registrations_per_s']} reg/s, "
              f"{result.get('server_cpu_ms_per_registration')} ms CPU, p99 {result['p99_ms']} "
              f"ms, errors {result['errors']}", file=sys.stderr, flush=True)
        return result

    async def register_rounds(self, kind: str, wheres: list[str], transport: str,
                              attestation: str, devices: int) -> None:
        """``--rounds`` turns of opendps and its references, in ABBA order (rounds.py)."""
        wheres = [w for w in wheres if w == "opendps" or self.refs.get(w)]
        per: dict[str, list[dict[str, Any]]] = {w: [] for w in wheres}
        for i in range(self.args.rounds):
            for where in rounds.order(wheres, i):
                per[where].append(await self.register(f"{kind}-{where}", where, transport,
                                                      attestation, devices))
        for where, results in per.items():
            self.results[f"{kind}-{where}"] = rounds.merge(results)

    async def hub_devices(self, where: str, count: int) -> tuple[HubTarget, list[int],
                                                                 list[HubDevice]]:
        fleet = DeviceFleet.new("symmetric-key", self.info["caCertificate"])
        context = fleet.base_context()
        if where == "opendps":
            fleet = await self.fleet("symmetric-key", "opendps")
            devices = await provision(self.target("opendps")[0], fleet, count)
            return HubTarget(context), self.server.pids(), devices
        ref = self.refs[where]
        assert ref is not None
        devices = [HubDevice(fleet.registration_id(i), self.server.host, None)
                   for i in range(count)]
        return HubTarget(context, connect_host=ref.host), ref.pids, devices

    async def run(self) -> None:
        a = self.args
        await self.register_rounds("https-sk", ["opendps", "floor", "nginx"], "https",
                                   "symmetric-key", a.devices)
        await self.register_rounds("mqtt-sk", ["opendps", "floor"], "mqtt", "symmetric-key",
                                   a.devices)
        await self.register_rounds("https-x509", ["opendps", "floor"], "https", "x509",
                                   a.devices // 2)
        for transport in ("https", "mqtt"):
            peak = self.results[f"{transport}-sk-opendps"]["registrations_per_s"]
            half = max(1.0, peak / 2)
            await self.register(f"{transport}-sk-half-rate", "opendps", transport,
                                "symmetric-key", int(half * a.latency_seconds), rate=half)
        for where in ("opendps", "mosquitto"):
            if where == "opendps" or self.refs.get(where):
                target, pids, devices = await self.hub_devices(where, a.telemetry_devices)
                self.results[f"telemetry-{where}"] = await run_telemetry(
                    target, devices, rate=0, duration=a.telemetry_seconds, server_pids=pids)
                target, pids, devices = await self.hub_devices(where, a.idle)
                self.results[f"idle-{where}"] = await run_idle(
                    target, devices, hold=a.hold, server_pids=pids)
                print(f"hub {where} done", file=sys.stderr, flush=True)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "–"


def _round_ratio(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> str:
    value = rounds.ratio(ours, theirs, key)
    if value is None:
        return "–"
    per_round = [a[key] / b[key] for a, b in zip(ours.get("rounds", ()), theirs.get("rounds", ()),
                                                  strict=False) if a.get(key) and b.get(key)]
    if len(per_round) < 2:
        return f"{value:.2f}"
    return f"{value:.2f} ({min(per_round):.2f}–{max(per_round):.2f})"


def table(r: dict[str, dict[str, Any]]) -> str:
    """Figure | opendps | reference | ratio | target."""
    def g(name: str, key: str) -> float | None:
        return r.get(name, {}).get(key)

    rows: list[tuple[str, Any, str, Any, str, str]] = []
    for kind, label in (("https-sk", "HTTPS symmetric key"), ("mqtt-sk", "MQTT symmetric key"),
                        ("https-x509", "HTTPS X.509 group")):
        mine = r.get(f"{kind}-opendps", {})
        ours = mine.get("registrations_per_s")
        for ref in ("floor", "nginx"):
            if f"{kind}-{ref}" in r:
                theirs = g(f"{kind}-{ref}", "registrations_per_s")
                target = "≥ 0.6" if ref == "floor" and "sk" in kind else ""
                rows.append((f"{label}: registrations/s", ours, ref, theirs,
                             _round_ratio(mine, r[f"{kind}-{ref}"], "registrations_per_s"),
                             target))
        cpu = mine.get("server_cpu_ms_per_registration")
        floor_cpu = g(f"{kind}-floor", "server_cpu_ms_per_registration")
        rows.append((f"{label}: server CPU ms/registration", cpu, "floor", floor_cpu,
                     _round_ratio(mine, r.get(f"{kind}-floor", {}),
                                  "server_cpu_ms_per_registration"),
                     "≤ 2 ms" if "sk" in kind else ""))
        if ours:
            rows.append((f"{label}: registrations/s vs one Azure unit", ours, "Azure S1 unit",
                         AZURE_PER_UNIT, _ratio(ours, AZURE_PER_UNIT),
                         "≥ 500/s" if "sk" in kind else ""))
    for transport in ("https", "mqtt"):
        name = f"{transport}-sk-half-rate"
        if name in r:
            rows.append((f"{transport.upper()} p99 ms at half max rate ({r[name]['rate']:.0f}/s)",
                         g(name, "p99_ms"), "", None, "", "≤ 50 ms"))
    ours, theirs = g("telemetry-opendps", "messages_per_s"), g("telemetry-mosquitto",
                                                               "messages_per_s")
    rows.append(("Telemetry QoS 1 messages/s", ours, "mosquitto", theirs, _ratio(ours, theirs),
                 "≥ 0.5"))
    ours = g("telemetry-opendps", "server_cpu_ms_per_message")
    theirs = g("telemetry-mosquitto", "server_cpu_ms_per_message")
    rows.append(("Telemetry server CPU ms/message", ours, "mosquitto", theirs,
                 _ratio(ours, theirs), ""))
    ours, theirs = g("idle-opendps", "server_kib_per_connection"), g(
        "idle-mosquitto", "server_kib_per_connection")
    n = r.get("idle-opendps", {}).get("connections", 0)
    rows.append((f"Idle connections: server KiB/connection ({n} held)", ours, "mosquitto",
                 theirs, _ratio(ours, theirs),
                 "10,000 in ≤ 1 GiB (≤ ~100 KiB each)"))
    rows.append(("Idle connections: server peak RSS MiB", g("idle-opendps",
                 "server_peak_rss_mib"), "mosquitto", g("idle-mosquitto", "server_peak_rss_mib"),
                 "", ""))
    errors = {k: v["errors"] for k, v in r.items() if v.get("error_count")}
    lines = ["| figure | opendps | reference | reference figure | ratio | target |",
             "|---|---:|---|---:|---:|---|"]
    for label, ours_v, ref, theirs_v, ratio, target in rows:
        lines.append(f"| {label} | {_fmt(ours_v)} | {ref} | {_fmt(theirs_v)} | {ratio} | "
                     f"{target} |")
    lines.append("")
    lines.append(f"Errors: {json.dumps(errors) if errors else 'none'}.")
    steal = [f"{k} {v['machine_steal_pct']}" for k, v in r.items()
             if v.get("machine_steal_pct") is not None]
    if steal:
        # a shared VM: what the hypervisor gave other guests during each run (from
        # /proc/stat), so a slow figure can be told from a busy host
        lines.append("")
        lines.append(f"CPU steal % per run: {', '.join(steal)}.")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return f"{value:,}"


def write(path: Path, body: str) -> None:
    """Replace the generated block between the markers; hand-written text stays."""
    block = f"{BEGIN}\n{body}\n{END}"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + block + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="opendps serve --workers (default: the number of cores, as "
                             "deployed for throughput; CPU is summed over every process)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run each registration phase and its references this many "
                             "times in turns (ABBA); figures are medians, ratios the median "
                             "of per-round ratios")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--telemetry-devices", type=int, default=100)
    parser.add_argument("--telemetry-seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write raw results here.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="opendps-run-all-"))
    bench = Bench(args, tmp)
    try:
        bench.start_references()
        run(bench.run())  # uvloop when installed, as the server runs on
    finally:
        bench.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python bench/run_all.py " + " ".join(sys.argv[1:])
    body = (f"Machine: {machine()}\n\nCommand: `{command}` (opendps with {args.workers} "
            f"worker process{'es' if args.workers > 1 else ''})\n\n{table(bench.results)}\n")
    print(body)
    if args.json:
        args.json.write_text(json.dumps(bench.results, indent=2))
    if args.write:
        write(args.write, body)


if __name__ == "__main__":
    main()
