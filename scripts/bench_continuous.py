#!/usr/bin/env python3
"""End-to-end latency of `lander run --mode continuous`: from a file's rename into landing to its rows in bronze.

Starts the release binary in continuous mode on fresh temp landing/bronze/checkpoint dirs, then lands FILES small
GH Archive files one at a time, SPACING_MS apart. Each file holds EVENTS distinct events (real 2015 GH Archive
events from ../shared/data/gharchive with rewritten unique ids) whose `created_at` all fall on their own UTC day
(2020-01-01 + i days), so the file's rows land in their own partition directory
`B/gharchive/year=YYYY/month=MM/day=DD/`. A file is written to `L/gharchive/.<name>.tmp`, fsynced, and renamed
to `<name>.json.gz` (the writer protocol lander expects; a renamed-in gzip file needs no settle wait).

Latency = from just before `os.rename` to the moment a `*.parquet` file exists in that file's partition
directory, polled every POLL_MS. lander renames a part into place only once it is durable (fsync), then commits
the checkpoint; so "visible" means "readable by a bronze reader", and the checkpoint commit follows it.

Baseline, same run: the same poll loop detecting a plain file renamed into a scratch directory (write + fsync a
temp file, rename to `x.parquet`, poll), measured right before each landed file: the cost of the measurement itself.

Percentiles are nearest-rank over all files (none skipped). At the end lander gets SIGTERM and must exit 0.
lander's own per-batch times are read from its JSON log ("batch committed", `secs`).

Usage: scripts/bench_continuous.py          (no arguments; stdlib only)
Environment:
  LANDER_BIN  binary                          [${CARGO_TARGET_DIR:-target}/release/lander]
  FILES       files to land                   [100]
  EVENTS      events per file                 [50]
  SPACING_MS  time between two renames        [200]
  POLL_MS     poll period of the visibility   [2]
"""

import datetime as dt
import gzip
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "..", "shared", "data", "gharchive", "2015-01-01-0.json.gz")
LANDER = os.environ.get("LANDER_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "release", "lander")
FILES = int(os.environ.get("FILES", "100"))
EVENTS = int(os.environ.get("EVENTS", "50"))
SPACING = int(os.environ.get("SPACING_MS", "200")) / 1000.0
POLL = int(os.environ.get("POLL_MS", "2")) / 1000.0
TIMEOUT = 30.0
DAY0 = dt.date(2020, 1, 1)


def nearest_rank(sorted_vals, p):
    """Nearest-rank percentile (p in 0..100) of an ascending list."""
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[k - 1]


def summary(vals):
    s = sorted(vals)
    return {
        "n": len(s),
        "min": s[0],
        "p50": nearest_rank(s, 50),
        "p90": nearest_rank(s, 90),
        "p99": nearest_rank(s, 99),
        "max": s[-1],
        "mean": statistics.fmean(s),
    }


def fmt_ms(d):
    return "n={n} min={min:.1f} p50={p50:.1f} p90={p90:.1f} p99={p99:.1f} max={max:.1f} mean={mean:.1f} (ms)".format(
        **{k: (v * 1000 if k != "n" else v) for k, v in d.items()})


def parquet_visible(d):
    try:
        with os.scandir(d) as it:
            return any(e.name.endswith(".parquet") for e in it)
    except FileNotFoundError:
        return False


def wait_visible(d, t0):
    """Polls d every POLL seconds until a *.parquet exists; returns seconds since t0 (None on timeout)."""
    while True:
        if parquet_visible(d):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > TIMEOUT:
            return None
        time.sleep(POLL)


def write_synced(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def make_files():
    """FILES gzip payloads: (name, day, bytes)."""
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as f:
        events = [json.loads(line) for _, line in zip(range(FILES * EVENTS), f)]
    if len(events) < FILES * EVENTS:
        sys.exit(f"error: {FIXTURE} has fewer than {FILES * EVENTS} events")
    out = []
    for i in range(FILES):
        day = DAY0 + dt.timedelta(days=i)
        lines = []
        for j in range(EVENTS):
            ev = dict(events[i * EVENTS + j])
            ev["id"] = str(90_000_000_000 + i * 10_000 + j)
            ev["created_at"] = f"{day.isoformat()}T{j // 3600 % 24:02d}:{j // 60 % 60:02d}:{j % 60:02d}Z"
            lines.append(json.dumps(ev, separators=(",", ":")))
        data = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)
        out.append((f"bench-{i:04d}", day, data))
    return out


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()
    total = next((l.split()[1] for l in mem if l.startswith("Mem:")), "?")
    return f"{os.cpu_count()} CPUs, {model}, {total} RAM, load avg {os.getloadavg()[0]:.2f} at start"


def main():
    if not os.access(LANDER, os.X_OK):
        sys.exit(f"error: no lander binary at {LANDER} (cargo build --release, or set LANDER_BIN)")
    lander = os.path.abspath(LANDER)
    files = make_files()
    tmp = tempfile.mkdtemp(prefix="lander-bench-cont-")
    proc = None
    log = None
    try:
        landing, bronze, ckpt, base = (os.path.join(tmp, d) for d in ("landing", "bronze", "checkpoint", "baseline"))
        os.makedirs(os.path.join(landing, "gharchive"))
        os.makedirs(base)
        cmd = [lander, "--log-format", "json", "run", "--mode", "continuous", "--landing", landing,
               "--bronze", bronze, "--checkpoint", ckpt, "--settle-time", "1s", "--poll-interval", "30s"]
        print(f"machine: {machine()}")
        print(f"lander: {lander}")
        print("command: " + " ".join(cmd))
        print(f"files: {FILES} x {EVENTS} events (~{statistics.fmean(len(d) for _, _, d in files) / 1024:.1f} KiB gzip each), "
              f"spacing {SPACING * 1000:.0f} ms, poll {POLL * 1000:.0f} ms")
        log_path = os.path.join(tmp, "lander.log")
        log = open(log_path, "w+")
        # cwd = tmp: no ./lander.toml is picked up, so only the flags above and built-in defaults apply.
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=log)
        t_start = time.perf_counter()
        while True:
            with open(log_path) as f:
                if "continuous mode: watching landing" in f.read():
                    break
            if proc.poll() is not None:
                sys.exit(f"error: lander exited with {proc.returncode} at start:\n{open(log_path).read()}")
            if time.perf_counter() - t_start > 10:
                sys.exit("error: lander did not report it was watching within 10 s")
            time.sleep(0.01)
        print(f"lander up (watching) after {(time.perf_counter() - t_start) * 1000:.0f} ms; waiting 1 s more")
        time.sleep(1.0)

        lat, basel = [], []
        for i, (name, day, data) in enumerate(files):
            # Baseline: the same poll loop on a plain file renamed into an empty directory.
            bdir = os.path.join(base, str(i))
            os.mkdir(bdir)
            write_synced(os.path.join(bdir, ".x.tmp"), b"x")
            t0 = time.perf_counter()
            os.rename(os.path.join(bdir, ".x.tmp"), os.path.join(bdir, "x.parquet"))
            basel.append(wait_visible(bdir, t0))

            tmpname = os.path.join(landing, "gharchive", f".{name}.tmp")
            final = os.path.join(landing, "gharchive", f"{name}.json.gz")
            part = os.path.join(bronze, "gharchive", f"year={day.year:04d}", f"month={day.month:02d}", f"day={day.day:02d}")
            write_synced(tmpname, data)
            t0 = time.perf_counter()
            os.rename(tmpname, final)
            l = wait_visible(part, t0)
            if l is None:
                print(f"file {i} ({name}): NOT visible after {TIMEOUT:.0f} s", flush=True)
                lat.append(TIMEOUT)
            else:
                lat.append(l)
            rest = SPACING - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)

        timeouts = sum(1 for v in lat if v >= TIMEOUT)
        # Give the last commit a moment, then stop lander.
        time.sleep(0.5)
        t_term = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            print("lander did not exit within 30 s of SIGTERM (killed)")
        stop_ms = (time.perf_counter() - t_term) * 1000

        batches = []
        log.seek(0)
        for line in log:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            fields = rec.get("fields", {})
            if fields.get("message") == "batch committed":
                batches.append(fields)
        rows = sum(b.get("rows", 0) for b in batches)
        per_batch = [b["secs"] for b in batches if "secs" in b]
        warns = [l for l in open(log_path) if '"level":"WARN"' in l or '"level":"ERROR"' in l]

        print()
        print(f"latency rename -> parquet visible, per file (ms): " + " ".join(f"{v * 1000:.0f}" for v in lat))
        print(f"lander  : {fmt_ms(summary(lat))}")
        print(f"baseline: {fmt_ms(summary(basel))}  (same poll loop, plain file renamed into a directory)")
        s = summary(lat)
        b = summary(basel)
        print(f"lander minus baseline, p50: {(s['p50'] - b['p50']) * 1000:.1f} ms; ratio p50 lander/baseline: "
              f"{s['p50'] / b['p50']:.0f}x")
        if per_batch:
            print(f"lander's own batch time (log 'batch committed' secs): {fmt_ms(summary(per_batch))}")
        print(f"batches committed: {len(batches)} (files per batch: "
              f"{sorted(set(b.get('files') for b in batches))}), rows: {rows} (expected {FILES * EVENTS}), "
              f"not visible within {TIMEOUT:.0f} s: {timeouts}")
        print(f"first file: {lat[0] * 1000:.1f} ms; without the first file: p50 {nearest_rank(sorted(lat[1:]), 50) * 1000:.1f} ms"
              if len(lat) > 1 else "")
        p50_ok, p99_ok = s["p50"] < 0.100, s["p99"] < 0.500
        print(f"targets: p50 < 100 ms: {'MET' if p50_ok else 'NOT MET'} ({s['p50'] * 1000:.1f} ms); "
              f"p99 < 500 ms: {'MET' if p99_ok else 'NOT MET'} ({s['p99'] * 1000:.1f} ms)")
        print(f"SIGTERM -> exit: {stop_ms:.0f} ms, exit code {rc} ({'ok' if rc == 0 else 'NOT 0'})")
        if warns:
            print(f"lander warnings/errors in log: {len(warns)}")
            for w in warns[:5]:
                print("  " + w.strip()[:300])
        ok = rc == 0 and timeouts == 0 and rows == FILES * EVENTS
        return 0 if ok else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if log is not None:
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
