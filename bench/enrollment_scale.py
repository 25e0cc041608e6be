"""Does registration throughput hold with a million enrollments stored? (issue 5)

Issue 5's target: with 1,000,000 individual enrollments and 1,000,000 registration records
stored, registrations/s within 10% of the 1,000-enrollment run, and the enrollment lookup by
registration ID O(log n). Two data dirs are filled — "small" (``--small`` of each) and
"large" (``--large`` of each) — then the same HTTPS symmetric-key load runs against each in
turn, alternating small, large, small, large so machine noise falls on both, and the figures
are reported as large/small ratios.

Filling goes straight into SQLite with SQLAlchemy Core ``executemany`` (a million PUTs through
the API would take hours), but every row is a copy of one the service itself wrote: the
template enrollment is PUT through the service API and the template registration record (with
its hub device and twin) comes from a real registration, so documents have the size and shape
the service stores. Only the IDs, keys, etags and timestamps differ per row.

Two load variants per server start:

* ``group``: ``opendps bench register`` as a user runs it (a fresh symmetric-key enrollment
  group). Each registration still looks the registration ID up in the individual enrollments
  first (a miss, in an n-row index) and writes its record into the n-row registrations table.
* ``individual``: the load generator's ``run_register`` (the CLI only makes groups) with
  devices that are individual enrollments stored among the n rows, so each registration's
  lookup is a hit in the n-row table.

    python bench/enrollment_scale.py [--large 1000000] [--small 1000] [--devices 2000]
                                     [--rounds 2] [--json out.json] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import datetime as dt
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
import _server

from opendps.client.loadgen import DeviceFleet, RegisterLoad, RegisterTarget, run, run_register
from opendps.client.service import DpsServiceClient
from opendps.protocol import sas
from opendps.protocol.registration import new_etag_value
from opendps.protocol.timefmt import format_utc
from opendps.store import open_store
from opendps.store import tables as t

BEGIN, END = "<!-- enrollment_scale:begin -->", "<!-- enrollment_scale:end -->"
RUN_ALL_END = "<!-- run_all:end -->"
STATE = "enrollment_scale.json"  # per data dir: what was loaded, so --work-dir can reuse it
CHUNK = 20_000  # rows per transaction
FILL = "fill"  # filler IDs: fill-0000000 …
DEVICE = "bench-ind"  # the individual variant's devices: bench-ind-<run>-r<round>-dev-000000


# Environment for every server and CLI process: PYTHONPATH to a copy of the package taken at
# start (see ``freeze_source``). Set once by ``main``.
CHILD_ENV: dict[str, str] = {}


def freeze_source(work: Path) -> dict[str, str]:
    """Run servers and the CLI from a copy of ``opendps`` taken now: a run takes many minutes,
    and an edit to the working tree in the middle would compare two versions of the code
    instead of two data sizes (PYTHONPATH comes before the editable install)."""
    import opendps

    dest = work / "src"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(Path(opendps.__file__).parent, dest / "opendps",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return {"PYTHONPATH": str(dest)}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def db_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'opendps.db'}"


def random_key() -> str:
    return base64.b64encode(os.urandom(64)).decode()


# -- filling ------------------------------------------------------------------------------------
async def make_templates(server: _server.Server, info: dict[str, Any]) -> str:
    """One enrollment PUT through the service API and one real registration of it: the rows
    the filler copies. Returns the template's registration ID."""
    fleet = DeviceFleet.new("symmetric-key", info["caCertificate"], run_id="template")
    fleet.prefix = "template-dev"
    reg_id = fleet.registration_id(0)
    key = sas.derive_device_key(fleet.group_key or "", reg_id)
    async with DpsServiceClient.from_connection_string(
            info["serviceConnectionString"], ca_file=info["caCertificate"]) as svc:
        await svc.create_or_update_enrollment({
            "registrationId": reg_id,
            "attestation": {"type": "symmetricKey",
                            "symmetricKey": {"primaryKey": key, "secondaryKey": key}},
            "reprovisionPolicy": {"updateHubAssignment": True, "migrateDeviceData": True}})
    result = await run_register(RegisterTarget(server.host, info["idScope"]),
                                RegisterLoad("https", 1, poll_immediately=True), fleet)
    if result["error_count"]:
        raise RuntimeError(f"template registration failed: {result['errors']}")
    return reg_id


def _row(conn: sa.Connection, table: sa.Table, **where: str) -> dict[str, Any] | None:
    stmt = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
    row = conn.execute(stmt).first()
    return None if row is None else dict(row._mapping)


def _chunks(n: int, size: int = CHUNK) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def fill(data_dir: Path, count: int, template_id: str, hub_devices: bool) -> dict[str, Any]:
    """``count`` individual enrollments and ``count`` registration records (plus, with
    ``hub_devices``, the hub device and twin each record implies), in ``CHUNK``-row
    transactions. The server must not be running."""
    engine = sa.create_engine(db_url(data_dir))
    timings: dict[str, float] = {}
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA synchronous = OFF")
            conn.exec_driver_sql("PRAGMA cache_size = -262144")  # 256 MiB for index builds
        with engine.connect() as conn:
            enrollment = _row(conn, t.individual_enrollments, key_lower=template_id)
            record = _row(conn, t.registrations, key_lower=template_id)
            assert enrollment is not None and record is not None, "no template rows"
            hub = record["assigned_hub"]
            device = _row(conn, t.devices, hub=hub, device_id=template_id)
            twin = _row(conn, t.twins, hub=hub, device_id=template_id)
        now = dt.datetime.now(dt.UTC)
        stamp = format_utc(now)

        def enrollments(ids: range) -> list[dict[str, Any]]:
            rows = []
            for i in ids:
                reg_id = f"{FILL}-{i:07d}"
                doc = copy.deepcopy(enrollment["doc"])
                doc["registrationId"] = reg_id
                doc["attestation"]["symmetricKey"] = {"primaryKey": random_key(),
                                                      "secondaryKey": random_key()}
                rows.append(dict(enrollment, key_lower=reg_id, key=reg_id, doc=doc,
                                 etag=uuid.uuid4().hex, created=now, updated=now))
            return rows

        def records(ids: range) -> list[dict[str, Any]]:
            rows = []
            for i in ids:
                reg_id = f"{FILL}-{i:07d}"
                doc = copy.deepcopy(record["doc"])
                doc.update(registrationId=reg_id, deviceId=reg_id, createdDateTimeUtc=stamp,
                           lastUpdatedDateTimeUtc=stamp,
                           etag=new_etag_value(str(uuid.uuid4())))
                rows.append(dict(record, key_lower=reg_id, key=reg_id, device_id=reg_id,
                                 doc=doc, etag=uuid.uuid4().hex, created=now, updated=now))
            return rows

        def hub_rows(template: dict[str, Any] | None, ids: range) -> list[dict[str, Any]]:
            if template is None:
                return []
            text = json.dumps(template["doc"])
            rows = []
            for i in ids:
                reg_id = f"{FILL}-{i:07d}"
                doc = json.loads(text.replace(template_id, reg_id))
                rows.append(dict(template, device_id=reg_id, doc=doc, etag=uuid.uuid4().hex,
                                 created=now, updated=now))
            return rows

        jobs: list[tuple[str, sa.Table, Any]] = [
            ("enrollments", t.individual_enrollments, enrollments),
            ("registrations", t.registrations, records)]
        if hub_devices:
            jobs += [("devices", t.devices, lambda ids: hub_rows(device, ids)),
                     ("twins", t.twins, lambda ids: hub_rows(twin, ids))]
        for name, table, make in jobs:
            started = time.perf_counter()
            for ids in _chunks(count):
                rows = make(ids)
                if not rows:
                    break
                with engine.begin() as conn:
                    conn.exec_driver_sql("PRAGMA synchronous = OFF")
                    conn.execute(table.insert(), rows)
                if (ids.stop // CHUNK) % 10 == 0 or ids.stop == count:
                    log(f"  {data_dir.name}: {name} {ids.stop:,}/{count:,} "
                        f"({time.perf_counter() - started:.0f} s)")
            timings[name] = round(time.perf_counter() - started, 1)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return timings


def add_device_enrollments(data_dir: Path, prefix: str, count: int, group_key: str) -> None:
    """The individual variant's devices: enrollments whose keys the fleet can derive, inserted
    among the filler rows (copies of the template, like them)."""
    engine = sa.create_engine(db_url(data_dir))
    try:
        with engine.begin() as conn:
            state = json.loads((data_dir / STATE).read_text())
            template = _row(conn, t.individual_enrollments, key_lower=state["template"])
            assert template is not None
            now = dt.datetime.now(dt.UTC)
            rows = []
            for i in range(count):
                reg_id = f"{prefix}-{i:06d}"
                key = sas.derive_device_key(group_key, reg_id)
                doc = copy.deepcopy(template["doc"])
                doc["registrationId"] = reg_id
                doc["attestation"]["symmetricKey"] = {"primaryKey": key, "secondaryKey": key}
                rows.append(dict(template, key_lower=reg_id.lower(), key=reg_id, doc=doc,
                                 etag=uuid.uuid4().hex, created=now, updated=now))
            conn.execute(t.individual_enrollments.insert(), rows)
    finally:
        engine.dispose()


def remove_device_enrollments(data_dir: Path) -> None:
    """Drop every run's device enrollments, so the next run finds n enrollments again (their
    registration records stay, like a device whose enrollment was deleted)."""
    engine = sa.create_engine(db_url(data_dir))
    try:
        with engine.begin() as conn:
            table = t.individual_enrollments
            conn.execute(sa.delete(table).where(table.c.key_lower.like(f"{DEVICE}-%")))
    finally:
        engine.dispose()


def prepare(data_dir: Path, count: int, hub_devices: bool) -> dict[str, Any]:
    """Create the instance (first start runs migrations and writes its settings), make the
    templates, stop the server and fill. A data dir already filled the same way is reused."""
    state_file = data_dir / STATE
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if state["count"] == count and state["hub_devices"] == hub_devices:
            log(f"{data_dir.name}: reusing {count:,} rows")
            return state
        raise SystemExit(f"{data_dir} holds a different fill; use another --work-dir")
    host = _server.free_loopback()
    server = _server.start(data_dir, env=CHILD_ENV, host=host)
    try:
        info = json.loads((data_dir / "info.json").read_text())
        template = asyncio.run(make_templates(server, info))
    finally:
        server.stop()
    log(f"{data_dir.name}: filling {count:,} enrollments and registration records")
    started = time.perf_counter()
    timings = fill(data_dir, count, template, hub_devices)
    state = {"count": count, "hub_devices": hub_devices, "template": template, "host": host,
             "load_s": round(time.perf_counter() - started, 1), "load_s_by_table": timings,
             "db_mib": round((data_dir / "opendps.db").stat().st_size / 2**20, 1)}
    state_file.write_text(json.dumps(state, indent=2))
    log(f"{data_dir.name}: filled in {state['load_s']} s ({state['db_mib']} MiB)")
    return state


def row_counts(data_dir: Path) -> dict[str, int]:
    engine = sa.create_engine(db_url(data_dir))
    try:
        with engine.connect() as conn:
            return {name: int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
                    for name, table in (("enrollments", t.individual_enrollments),
                                        ("registrations", t.registrations),
                                        ("devices", t.devices))}
    finally:
        engine.dispose()


async def lookup_us(data_dir: Path, count: int, samples: int = 5000) -> float:
    """Mean µs per ``get_enrollment("individual", …)`` of random stored IDs through the real
    store (no server): the O(log n) lookup on its own, without the registration around it."""
    store = await open_store(db_url(data_dir))
    try:
        ids = [f"{FILL}-{random.randrange(count):07d}" for _ in range(samples)]
        for reg_id in ids[:200]:
            await store.get_enrollment("individual", reg_id)
        started = time.perf_counter()
        for reg_id in ids:
            assert await store.get_enrollment("individual", reg_id) is not None
        return round(1e6 * (time.perf_counter() - started) / samples, 1)
    finally:
        await store.close()


# -- measuring ----------------------------------------------------------------------------------
def start(data_dir: Path) -> _server.Server:
    """The server on the data dir's own address: a new host name would add a built-in hub
    (changing allocation), and a stale ``info.json`` would point the CLI at the old one."""
    state = json.loads((data_dir / STATE).read_text())
    (data_dir / "info.json").unlink(missing_ok=True)
    return _server.start(data_dir, env=CHILD_ENV, host=state["host"])


def server_pids(server: _server.Server) -> list[int]:
    """The server and any worker processes it started: CPU is counted over all of them."""
    return [server.proc.pid, *_server.children(server.proc.pid)]


def bench_cli(data_dir: Path, pids: list[int], devices: int, concurrency: int
              ) -> dict[str, Any]:
    """``opendps bench register`` exactly as a user runs it (a new group each time)."""
    proc = subprocess.run(
        [sys.executable, "-m", "opendps", "bench", "register", "--transport", "https",
         "--devices", str(devices), "--concurrency", str(concurrency), "--poll-immediately",
         *(arg for pid in pids for arg in ("--server-pid", str(pid))), "--json",
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, env=dict(os.environ, **CHILD_ENV))
    if not proc.stdout:
        raise RuntimeError(proc.stderr)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run_dir(data_dir: Path, run_id: str, round_no: int, args: argparse.Namespace,
            group_key: str) -> list[dict[str, Any]]:
    """Both variants against one data dir, each on a fresh server start after a warm-up.

    The individual variant's devices are inserted just before it and removed after it, so the
    group variant (and the next round) sees the filler alone."""
    out = []

    def record(variant: str, counts: dict[str, int], result: dict[str, Any]) -> None:
        out.append({"size": data_dir.name, "round": round_no, "variant": variant,
                    "stored": counts, **result})
        log(f"  {data_dir.name} round {round_no} {variant}: {result['registrations_per_s']} "
            f"reg/s, {result.get('server_cpu_ms_per_registration')} ms CPU/reg, "
            f"errors {result['error_count']}, stored {counts}")

    counts = row_counts(data_dir)
    server = start(data_dir)
    try:
        bench_cli(data_dir, server_pids(server), args.warmup, args.concurrency)  # warm-up
        group = bench_cli(data_dir, server_pids(server), args.devices, args.concurrency)
    finally:
        server.stop()
    record("group", counts, group)

    prefix = f"{DEVICE}-{run_id}-r{round_no}-dev"
    add_device_enrollments(data_dir, prefix, args.warmup + args.devices, group_key)
    counts = row_counts(data_dir)
    server = start(data_dir)
    try:
        info = json.loads((data_dir / "info.json").read_text())
        target = RegisterTarget(server.host, info["idScope"])
        fleet = DeviceFleet(group_id="(individual enrollments)", attestation="symmetric-key",
                            ca_file=info["caCertificate"], prefix=prefix, group_key=group_key)
        load = RegisterLoad("https", args.warmup, None, args.concurrency, None, True)
        run(run_register(target, load, fleet))  # imports, caches, first connections
        load.devices = args.devices
        individual = run(run_register(target, load, fleet,
                                      server_pids=server_pids(server), first=args.warmup))
    finally:
        server.stop()
        remove_device_enrollments(data_dir)
    record("individual", counts, individual)
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean per (variant, size) over rounds, and large/small ratios."""
    summary: dict[str, dict[str, Any]] = {}
    for variant in ("group", "individual"):
        figures: dict[str, Any] = {}
        for size in ("small", "large"):
            mine = [r for r in runs if r["variant"] == variant and r["size"] == size]
            figures[size] = {
                "registrations_per_s": round(statistics.fmean(
                    r["registrations_per_s"] for r in mine), 1),
                "server_cpu_ms_per_registration": round(statistics.fmean(
                    r["server_cpu_ms_per_registration"] for r in mine), 2),
                "p99_ms": round(statistics.fmean(r["p99_ms"] for r in mine), 1),
                "completed": sum(r["completed"] for r in mine),
                "error_count": sum(r["error_count"] for r in mine),
            }
        figures["ratio_registrations_per_s"] = round(
            figures["large"]["registrations_per_s"] / figures["small"]["registrations_per_s"], 3)
        figures["ratio_server_cpu"] = round(
            figures["large"]["server_cpu_ms_per_registration"]
            / figures["small"]["server_cpu_ms_per_registration"], 3)
        summary[variant] = figures
    return summary


def markdown(result: dict[str, Any], command: str) -> str:
    s, counts, fills = result["summary"], result["rows"], result["fill"]
    large = fills["large"]
    lines = [
        f"Command: `{command}`",
        "",
        f"Stored before the runs: small {counts['small']['enrollments']:,} individual "
        f"enrollments, {counts['small']['registrations']:,} registration records and "
        f"{counts['small']['devices']:,} hub devices; large {counts['large']['enrollments']:,}"
        f", {counts['large']['registrations']:,} and {counts['large']['devices']:,} (filler "
        "plus the template device). Large fill (SQLAlchemy Core executemany, "
        f"{CHUNK:,} rows per transaction): {large['load_s']} s "
        f"({', '.join(f'{k} {v} s' for k, v in large['load_s_by_table'].items())}), "
        f"{large['db_mib']:,} MiB database. Each run is {result['devices']:,} HTTPS "
        f"symmetric-key registrations (new TLS connection each, `--poll-immediately`) after a "
        f"{result['warmup']}-device warm-up on a fresh server start; {result['rounds']} rounds, "
        "small and large alternating; figures are means over rounds. The individual variant's "
        f"{result['device_enrollments']:,} device enrollments are inserted among the stored "
        "ones for its run only.",
        "",
        "| variant | small reg/s | large reg/s | ratio | small CPU ms/reg | large CPU ms/reg "
        "| ratio | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for variant, label in (("group", "group devices (`opendps bench register`; "
                                     "individual lookup misses)"),
                           ("individual", "individual enrollments (lookup hits)")):
        f = s[variant]
        lines.append(
            f"| {label} | {f['small']['registrations_per_s']} | "
            f"{f['large']['registrations_per_s']} | {f['ratio_registrations_per_s']:.2f} | "
            f"{f['small']['server_cpu_ms_per_registration']} | "
            f"{f['large']['server_cpu_ms_per_registration']} | {f['ratio_server_cpu']:.2f} | "
            "reg/s ratio ≥ 0.9 |")
    lines += ["", "| run | stored enrollments / records | reg/s | server CPU ms/reg | p99 ms "
              "| errors |", "|---|---:|---:|---:|---:|---:|"]
    for r in result["runs"]:
        st = r["stored"]
        lines.append(f"| {r['size']} {r['variant']} (round {r['round'] + 1}) | "
                     f"{st['enrollments']:,} / {st['registrations']:,} | "
                     f"{r['registrations_per_s']} | {r['server_cpu_ms_per_registration']} | "
                     f"{r['p99_ms']} | {r['error_count']} |")
    lk = result["lookup_us"]
    lines += ["", f"`get_enrollment` alone (through the store, no server, random stored IDs): "
              f"{lk['small']} µs small, {lk['large']} µs large. Every per-registration lookup "
              "is an index search (`tests/store/test_lookup_plan.py`).", "",
              f"Errors: {sum(r['error_count'] for r in result['runs'])}."]
    return "\n".join(lines)


def write(path: Path, body: str) -> None:
    """Replace our block; without one, add it after run_all's block (or at the end)."""
    block = f"{BEGIN}\n{body}\n{END}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        path.write_text(head + block + tail)
    elif RUN_ALL_END in text:
        head, _, tail = text.partition(RUN_ALL_END)
        path.write_text(f"{head}{RUN_ALL_END}\n\n{block}{tail}")
    else:
        path.write_text(f"{text.rstrip()}\n\n{block}\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--devices", type=int, default=2000, help="Registrations per run.")
    parser.add_argument("--rounds", type=int, default=2, help="small, large pairs.")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-hub-devices", dest="hub_devices", action="store_false",
                        help="Fill only enrollments and records, not the hub devices and "
                             "twins the records imply.")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="Keep (and reuse) the filled data dirs here.")
    parser.add_argument("--json", type=Path, default=None, help="Write raw results here.")
    parser.add_argument("--write", type=Path, default=None, help="Markdown file to update.")
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="opendps-enrollment-scale-"))
    dirs = {"small": work / "small", "large": work / "large"}
    try:
        CHILD_ENV.update(freeze_source(work))
        fills = {size: prepare(d, args.small if size == "small" else args.large,
                               args.hub_devices) for size, d in dirs.items()}
        run_id, group_key = secrets.token_hex(3), random_key()
        for d in dirs.values():
            remove_device_enrollments(d)  # an interrupted run's, with --work-dir
        rows = {size: row_counts(d) for size, d in dirs.items()}
        lookups = {size: asyncio.run(lookup_us(d, fills[size]["count"]))
                   for size, d in dirs.items()}
        log(f"rows: {rows}; get_enrollment µs: {lookups}")
        runs: list[dict[str, Any]] = []
        for round_no in range(args.rounds):
            for d in dirs.values():
                runs += run_dir(d, run_id, round_no, args, group_key)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {"large": args.large, "small": args.small, "devices": args.devices,
              "warmup": args.warmup,
              "rounds": args.rounds, "device_enrollments": args.warmup + args.devices,
              "fill": fills, "rows": rows, "lookup_us": lookups, "runs": runs,
              "summary": summarise(runs),
              "note": "group: opendps bench register (new symmetric-key group; the individual "
                      "lookup by registration ID is a miss in the n-row table); individual: "
                      "run_register with devices that are stored individual enrollments"}
    command = "python bench/enrollment_scale.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    body = markdown(result, command)
    print(body)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.write:
        write(args.write, body)
    return result


if __name__ == "__main__":
    main()
