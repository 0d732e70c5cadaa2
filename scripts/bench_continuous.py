#!/usr/bin/env python3
"""End-to-end latency of `lander run --mode continuous`: from a file's rename into landing to its rows in bronze.

Starts the release binary in continuous mode on fresh temp landing/bronze/checkpoint dirs, then lands FILES small
GH Archive files one at a time, SPACING_MS apart. Each file holds EVENTS distinct events (real 2015 GH Archive
events from ../shared/data/gharchive, reused in a cycle, with rewritten unique ids) whose `created_at` fall on one
UTC day, 2020-01-01 + i // FILES_PER_DAY days, so the file's rows land in the partition directory
`B/gharchive/year=YYYY/month=MM/day=DD/` of that day as one new part. A file is written to `L/gharchive/.<name>.tmp`, fsynced, and renamed
to `<name>.json.gz` (the writer protocol lander expects; a renamed-in gzip file needs no settle wait).

Latency = from just before `os.rename` to the moment the file's rows are visible, polled every POLL_MS:
- TABLE_FORMAT=delta (the default): a new version of `B/gharchive/_delta_log/` whose `add` actions reference a
  part in that file's partition directory, i.e. readable by a Delta reader (parts are written in place before the
  commit, so a new `*.parquet` file alone is not visible; the log entry is the publish);
- TABLE_FORMAT=parquet: one more `*.parquet` file in that file's partition directory than before the rename (lander
  renames a part into place only once it is durable).
The checkpoint (sled) commit follows in both cases.

Baseline, same run: the same poll loop detecting a plain file renamed into a scratch directory (write + fsync a
temp file, rename to `x.parquet`, poll), measured right before each landed file: the cost of the measurement itself.

Percentiles are nearest-rank over all files (none skipped). At the end lander gets SIGTERM and must exit 0.
lander's own per-batch times are read from its JSON log ("batch committed", `secs`).

Memory: lander's RSS (VmRSS of /proc/<pid>/status) is sampled every second for the whole run; the script prints
the curve as one line per RSS_REPORT_S seconds (min/median/max of the samples in that window) and the slope of a
least-squares line through all samples.

Usage: scripts/bench_continuous.py          (no arguments; stdlib only)
Environment:
  LANDER_BIN  binary                          [${CARGO_TARGET_DIR:-target}/release/lander]
  FILES       files to land                   [100]
  EVENTS      events per file                 [50]
  SPACING_MS  time between two renames        [200]
  POLL_MS     poll period of the visibility   [2]
  FILES_PER_DAY  files whose events share a UTC day [1]
  RSS_REPORT_S   width of a window of the RSS curve  [60]
  TABLE_FORMAT   delta | parquet (what "visible" means, see above)  [delta]
  COMPACT_MIN_FILES, COMPACT_QUIET, COMPACT_MAX_FILES   automatic compaction (delta only), passed to lander as
                 LANDER_COMPACT_*; COMPACT_MIN_FILES=0 turns it off  [lander's defaults: 16, 10m, 64]
A 10-minute steady stream: FILES=3000 SPACING_MS=200 FILES_PER_DAY=100.
With TABLE_FORMAT=delta the live parts of every partition are counted once a second by replaying the log (adds
minus removes) and the largest count any partition reached is printed, with the compactions lander logged
("partition compacted"). A compaction's commit adds parts too (dataChange=false): it does not count as a file
becoming visible.
Automatic compaction at a file a second for 10 minutes, one day:
  FILES=600 SPACING_MS=1000 FILES_PER_DAY=600 COMPACT_MIN_FILES=16 COMPACT_MAX_FILES=16 COMPACT_QUIET=10m
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
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "..", "shared", "data", "gharchive", "2015-01-01-0.json.gz")
LANDER = os.environ.get("LANDER_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "release", "lander")
FILES = int(os.environ.get("FILES", "100"))
EVENTS = int(os.environ.get("EVENTS", "50"))
SPACING = int(os.environ.get("SPACING_MS", "200")) / 1000.0
POLL = int(os.environ.get("POLL_MS", "2")) / 1000.0
FILES_PER_DAY = int(os.environ.get("FILES_PER_DAY", "1"))
RSS_REPORT_S = int(os.environ.get("RSS_REPORT_S", "60"))
TABLE_FORMAT = os.environ.get("TABLE_FORMAT", "delta")
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


def parquet_count(d):
    try:
        return sum(1 for n in os.listdir(d) if n.endswith(".parquet"))
    except FileNotFoundError:
        return 0


def parquet_visible(d):
    try:
        with os.scandir(d) as it:
            return any(e.name.endswith(".parquet") for e in it)
    except FileNotFoundError:
        return False


def wait_visible(d, t0, before=0):
    """Polls d every POLL seconds until more than `before` *.parquet files exist; returns seconds since t0 (None on
    timeout)."""
    while True:
        if (parquet_count(d) > before) if before else parquet_visible(d):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > TIMEOUT:
            return None
        time.sleep(POLL)


def log_versions(log_dir):
    """Versions of the commit files (`<20 digits>.json`) in a Delta log directory."""
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    return sorted(int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit())


def adds_of(path):
    """The `add` paths of one commit file that bring new rows (a compaction's adds are dataChange=false)."""
    out = []
    with open(path) as f:
        for line in f:
            action = json.loads(line)
            if "add" in action and action["add"].get("dataChange", True):
                out.append(action["add"]["path"])
    return out


class LiveParts:
    """Live parts per partition directory of a Delta table, kept up to date by replaying new commit files."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.next = 0
        self.live = {}
        self.peak = 0

    def update(self):
        versions = set(log_versions(self.log_dir))
        while self.next in versions:
            with open(os.path.join(self.log_dir, f"{self.next:020d}.json")) as f:
                for line in f:
                    a = json.loads(line)
                    if "add" in a:
                        self.live[a["add"]["path"]] = True
                    elif "remove" in a:
                        self.live.pop(a["remove"]["path"], None)
            self.next += 1
        counts = {}
        for p in self.live:
            d = p.rsplit("/", 1)[0]
            counts[d] = counts.get(d, 0) + 1
        self.peak = max([self.peak] + list(counts.values()))
        return counts


def wait_in_log(log_dir, t0, after, prefix):
    """Polls the Delta log every POLL seconds until a version above `after` adds a file below `prefix`; returns
    (seconds since t0, that version), or (None, after) on timeout."""
    seen = after
    while True:
        for v in log_versions(log_dir):
            if v <= seen:
                continue
            seen = v
            if any(p.startswith(prefix) for p in adds_of(os.path.join(log_dir, f"{v:020d}.json"))):
                return time.perf_counter() - t0, v
        if time.perf_counter() - t0 > TIMEOUT:
            return None, seen
        time.sleep(POLL)


def write_synced(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def make_files():
    """FILES gzip payloads: (name, day, bytes)."""
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    out = []
    for i in range(FILES):
        day = DAY0 + dt.timedelta(days=i // FILES_PER_DAY)
        lines = []
        for j in range(EVENTS):
            ev = dict(events[(i * EVENTS + j) % len(events)])
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
               "--bronze", bronze, "--checkpoint", ckpt, "--settle-time", "1s", "--poll-interval", "30s",
               "--table-format", TABLE_FORMAT]
        print(f"machine: {machine()}")
        print(f"lander: {lander}")
        print("command: " + " ".join(cmd))
        print(f"files: {FILES} x {EVENTS} events (~{statistics.fmean(len(d) for _, _, d in files) / 1024:.1f} KiB gzip each), "
              f"spacing {SPACING * 1000:.0f} ms, poll {POLL * 1000:.0f} ms, table format {TABLE_FORMAT}")
        log_path = os.path.join(tmp, "lander.log")
        log = open(log_path, "w+")
        # cwd = tmp: no ./lander.toml is picked up, so only the flags above and built-in defaults apply.
        env = dict(os.environ)
        for k in ("COMPACT_MIN_FILES", "COMPACT_QUIET", "COMPACT_MAX_FILES"):
            if k in os.environ:
                env["LANDER_" + k] = os.environ[k]
        compact = {k: env[k] for k in env if k.startswith("LANDER_COMPACT_")}
        print(f"automatic compaction: {compact or 'lander defaults'}")
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=log, env=env)
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
        rss = []  # (seconds since start, MiB)
        sampling = threading.Event()
        parts = LiveParts(os.path.join(bronze, "gharchive", "_delta_log"))

        def sample():
            t = time.perf_counter()
            while not sampling.is_set():
                if TABLE_FORMAT == "delta":
                    parts.update()
                try:
                    with open(f"/proc/{proc.pid}/status") as f:
                        kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
                    rss.append((time.perf_counter() - t, kb / 1024))
                except (OSError, StopIteration):
                    pass
                sampling.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        print(f"lander up (watching) after {(time.perf_counter() - t_start) * 1000:.0f} ms; waiting 1 s more")
        time.sleep(1.0)

        lat, basel = [], []
        log_dir = os.path.join(bronze, "gharchive", "_delta_log")
        last_version = max(log_versions(log_dir), default=-1)
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
            before = parquet_count(part)
            t0 = time.perf_counter()
            os.rename(tmpname, final)
            if TABLE_FORMAT == "delta":
                prefix = f"year={day.year:04d}/month={day.month:02d}/day={day.day:02d}/"
                l, last_version = wait_in_log(log_dir, t0, last_version, prefix)
            else:
                l = wait_visible(part, t0, before)
            if l is None:
                print(f"file {i} ({name}): NOT visible after {TIMEOUT:.0f} s", flush=True)
                lat.append(TIMEOUT)
            else:
                lat.append(l)
            rest = SPACING - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)

        timeouts = sum(1 for v in lat if v >= TIMEOUT)
        sampling.set()
        sampler.join()
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

        batches, compactions = [], []
        log.seek(0)
        for line in log:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            fields = rec.get("fields", {})
            if fields.get("message") == "batch committed":
                batches.append(fields)
            if fields.get("message") == "partition compacted":
                compactions.append(fields)
        rows = sum(b.get("rows", 0) for b in batches)
        per_batch = [b["secs"] for b in batches if "secs" in b]
        warns = [l for l in open(log_path) if '"level":"WARN"' in l or '"level":"ERROR"' in l]

        print()
        what = "visible in the delta log" if TABLE_FORMAT == "delta" else "parquet visible"
        print(f"latency rename -> {what}, per file (ms): " + " ".join(f"{v * 1000:.0f}" for v in lat))
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
        # Issue 20's targets for Delta (visible through the log); the Parquet protocol's were p50 100 / p99 500.
        p99_target = 0.250 if TABLE_FORMAT == "delta" else 0.500
        p50_ok, p99_ok = s["p50"] < 0.100, s["p99"] < p99_target
        print(f"targets: p50 < 100 ms: {'MET' if p50_ok else 'NOT MET'} ({s['p50'] * 1000:.1f} ms); "
              f"p99 < {p99_target * 1000:.0f} ms: {'MET' if p99_ok else 'NOT MET'} ({s['p99'] * 1000:.1f} ms)")
        if TABLE_FORMAT == "delta":
            print(f"delta log: {len(log_versions(log_dir))} commit files (version 0 + one per batch + one per compaction)")
            final = parts.update()
            print(f"live parts per partition: peak {parts.peak} (sampled 1/s), at the end max {max(final.values(), default=0)} "
                  f"over {len(final)} partition(s); compactions logged: {len(compactions)}, parts rewritten "
                  f"{sum(c.get('files_in', 0) for c in compactions)}, compaction secs "
                  f"{fmt_ms(summary([c['secs'] for c in compactions])) if compactions else '-'}")
        print(f"SIGTERM -> exit: {stop_ms:.0f} ms, exit code {rc} ({'ok' if rc == 0 else 'NOT 0'})")
        if rss:
            print(f"RSS samples (1/s): {len(rss)}; per {RSS_REPORT_S} s window: min/median/max MiB")
            for w0 in range(0, int(rss[-1][0]) + 1, RSS_REPORT_S):
                win = [m for t, m in rss if w0 <= t < w0 + RSS_REPORT_S]
                if win:
                    print(f"  {w0:>5}-{w0 + RSS_REPORT_S:<5} s: {min(win):7.1f} {statistics.median(win):7.1f} {max(win):7.1f}")
            n = len(rss)
            mt = sum(t for t, _ in rss) / n
            mm = sum(m for _, m in rss) / n
            var = sum((t - mt) ** 2 for t, _ in rss)
            slope = sum((t - mt) * (m - mm) for t, m in rss) / var if var else 0.0
            print(f"RSS overall: min {min(m for _, m in rss):.1f}, max {max(m for _, m in rss):.1f} MiB; "
                  f"least-squares slope {slope * 60:.2f} MiB/min")
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
