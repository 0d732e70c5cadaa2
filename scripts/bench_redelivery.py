#!/usr/bin/env python3
"""Issue 21: what dedup-from-bronze costs. Two measurements, each in the same repetitions as its baseline.

(a) Chronological ingest: the 16-file once-run (bench_scale.py's hour-files: 15,129 events each, all on
    2015-01-01) with BASE_BIN (main's binary) and LANDER_BIN, alternating which goes first, per table format.
    Reports medians and the per-repetition ratio LANDER_BIN / BASE_BIN. Skipped without BASE_BIN.
(b) A re-delivered old hour vs a new hour of the same size. State, built once per format: the 16 hour-files,
    then one hour moved to 2015-03-15 (fresh ids), so 2015-01-01 falls behind the 35-day horizon and leaves the
    local dedup index. Each repetition copies that state twice and times one `run --mode once` over it:
      new  an hour-file moved to 2015-03-16 with fresh ids (15,129 rows written);
      old  h001 again under a new name: 2015-01-01 is read back from bronze (the 16 files' 242,064 keys) and all
           15,129 events are dropped as duplicates.
    Reports medians, the per-repetition ratio old/new, and the day load itself (keys, ms and keys/s from the
    "loaded the keys of a day from bronze" log line).

Usage: scripts/bench_redelivery.py
Environment: LANDER_BIN (as bench_scale.py), BASE_BIN, FILES [16], REPS [3], FORMATS ["parquet delta"],
KEEP_INPUT (as bench_scale.py), SKIP_REDELIVERY (set: only (a)).
Each repetition of (a) also times `gzip -dc` of the same files (the same-run baseline).
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scale import build_input, lander_bin, rows_written, timed  # noqa: E402


def run(lander, work, fmt):
    cmd = [lander, "-q",
        "run", "--mode", "once", "--landing", "landing", "--bronze", "bronze", "--checkpoint", "checkpoint",
        "--settle-time", "0s", "--table-format", fmt]
    return timed(cmd, cwd=work, stdout=None)


def run_logged(lander, work, fmt):
    """`run`, with lander's info log in work/lander.log."""
    cmd = (f"RUST_LOG=lander=info exec {lander} run --mode once --landing landing --bronze bronze "
           f"--checkpoint checkpoint --settle-time 0s --table-format {fmt} 2> lander.log")
    return timed(["sh", "-c", cmd], cwd=work, stdout=None)


def shifted(src, dest, day, tag):
    """src moved to 2015-03-<day> with every id suffixed by tag."""
    # The event's own created_at is the line's last one (payloads hold others before it): the greedy `.*` finds it.
    sh = (f"gzip -dc {src} | sed -e 's/^\\(.*\\)\"created_at\":\"2015-01-01T/\\1\"created_at\":\"2015-03-{day}T/' "
          f"-e 's/\"id\":\"\\([0-9-]*\\)\"/\"id\":\"\\1{tag}\"/g' | gzip -6 > {dest}")
    subprocess.run(["sh", "-c", sh], check=True)


def fresh(work, files):
    shutil.rmtree(work, ignore_errors=True)
    landing = os.path.join(work, "landing", "gharchive")
    os.makedirs(landing)
    for f in files:
        shutil.copy(f, landing)
    subprocess.run(["sync"])
    return landing


def chronological(base, lander, files, tmp, reps, fmt):
    times = {"base": [], "new": [], "gzip": []}
    ratios = []
    for rep in range(reps):
        order = ["base", "new"] if rep % 2 == 0 else ["new", "base"]
        got = {}
        # The same-run baseline: decompressing the same 16 files.
        gz, _, _ = timed(["sh", "-c", "gzip -dc " + " ".join(files) + " > /dev/null"])
        times["gzip"].append(gz)
        for who in order:
            work = os.path.join(tmp, f"chrono-{who}")
            fresh(work, files)
            s, _, out = run(base if who == "base" else lander, work, fmt)
            assert rows_written(out) == 15129 * len(files), out
            got[who] = s
            shutil.rmtree(work)
        times["base"].append(got["base"])
        times["new"].append(got["new"])
        ratios.append(got["new"] / got["base"])
        print(f"  {fmt} rep {rep + 1}: gzip -dc {gz:.2f} s, main {got['base']:.2f} s, this {got['new']:.2f} s, "
              f"ratio {ratios[-1]:.3f}", flush=True)
    print(f"(a) {fmt} {len(files)} files: gzip -dc {statistics.median(times['gzip']):.2f} s, main "
          f"{statistics.median(times['base']):.2f} s, this "
          f"{statistics.median(times['new']):.2f} s, ratio median {statistics.median(ratios):.3f} "
          f"[{min(ratios):.3f}..{max(ratios):.3f}]", flush=True)


def redelivery(lander, files, tmp, reps, fmt):
    # The checkpoint is bound to its landing and bronze paths: every run happens at the same path, `work`, from a
    # copy of the state saved beside it.
    work = os.path.join(tmp, "r")
    state = os.path.join(tmp, f"state-{fmt}")
    landing = fresh(work, files)
    s, _, out = run(lander, work, fmt)
    assert rows_written(out) == 15129 * len(files), out
    shifted(files[0], os.path.join(landing, "later.json.gz"), 15, "L")
    run(lander, work, fmt)
    shutil.rmtree(state, ignore_errors=True)
    shutil.copytree(work, state)
    new_hour = os.path.join(tmp, "new-hour.json.gz")
    shifted(files[1], new_hour, 16, "N")
    res = {"new": [], "old": []}
    ratios, loads = [], []
    for rep in range(reps):
        order = ["new", "old"] if rep % 2 == 0 else ["old", "new"]
        got = {}
        for which in order:
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(state, work)
            dest = os.path.join(work, "landing", "gharchive")
            if which == "new":
                shutil.copy(new_hour, os.path.join(dest, "new-hour.json.gz"))
            else:
                shutil.copy(files[0], os.path.join(dest, "h001-again.json.gz"))
            subprocess.run(["sync"])
            secs, _, out = run_logged(lander, work, fmt)
            rows = rows_written(out)
            assert rows == (15129 if which == "new" else 0), out[-3000:]
            got[which] = secs
            if which == "old":
                for line in open(os.path.join(work, "lander.log")):
                    if "loaded the keys of a day from bronze" in line:
                        k = re.search(r"keys=(\d+)", line)
                        ms = re.search(r"ms=([0-9.]+)", line)
                        loads.append((int(k.group(1)), float(ms.group(1))))
            shutil.rmtree(work)
        res["new"].append(got["new"])
        res["old"].append(got["old"])
        ratios.append(got["old"] / got["new"])
        load = f", day load {loads[-1][0]} keys in {loads[-1][1]:.0f} ms" if loads else ""
        print(f"  {fmt} rep {rep + 1}: new hour {got['new']:.2f} s, old hour {got['old']:.2f} s, "
              f"ratio {ratios[-1]:.2f}{load}", flush=True)
    line = (f"(b) {fmt}: new hour {statistics.median(res['new']):.2f} s, re-delivered old hour "
            f"{statistics.median(res['old']):.2f} s, ratio median {statistics.median(ratios):.2f} "
            f"[{min(ratios):.2f}..{max(ratios):.2f}]")
    if loads:
        keys = loads[0][0]
        ms = statistics.median(l[1] for l in loads)
        line += f"; day load: {keys} keys, median {ms:.0f} ms = {keys / ms * 1e3 / 1e6:.2f} M keys/s"
    print(line, flush=True)


def main():
    lander = lander_bin()
    base = os.environ.get("BASE_BIN")
    files_n = int(os.environ.get("FILES", "16"))
    reps = int(os.environ.get("REPS", "3"))
    formats = os.environ.get("FORMATS", "parquet delta").split()
    keep = os.environ.get("KEEP_INPUT")
    tmp = tempfile.mkdtemp(prefix="lander-bench-redelivery-")
    src = keep or os.path.join(tmp, "src")
    build_input(src, files_n)
    files = sorted(os.path.join(src, f) for f in os.listdir(src))[:files_n]
    print(f"this: {lander}\nmain: {base}\nload average at start: {os.getloadavg()}", flush=True)
    try:
        for fmt in formats:
            if base:
                chronological(os.path.abspath(base), lander, files, tmp, reps, fmt)
            if not os.environ.get("SKIP_REDELIVERY"):
                redelivery(lander, files, tmp, reps, fmt)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
