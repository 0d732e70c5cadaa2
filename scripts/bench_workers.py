#!/usr/bin/env python3
"""Workers benchmark: N lander workers writing one Delta table, and the serial commit rate of the log.

Part 1, throughput (local disk, the 16-file set of scripts/bench_scale.py: 16 hour-files of the two 2015 sample
hours with rewritten ids, 15,129 events and 35.2 MB NDJSON each). Per repetition, in rotating order:
  gzip   gzip -dc <16 files> > /dev/null                                      (baseline, same run)
  one    taskset -c 0,1 lander run --mode available-now ... (one worker, two cores)
  two    taskset -c 0 lander ... --worker 0/2  &  taskset -c 1 lander ... --worker 1/2   (wall = the later end)
each with fresh bronze and checkpoints, `--settle-time 0s --max-files-per-batch $FILES_PER_BATCH` (default 1, so
16 commits: the most contention). From the logs (RUST_LOG=lander=info,lander::modes::cross_check=debug,
lander::modes::delta=debug): commits, commit attempts that lost the version race ("lost the delta version race",
the same event as the lander_commit_conflicts_total counter), batches run again ("cross-writer check" warnings),
and the time of every cross-writer check that read the log ("cross-writer check ... ms=").

Part 2, serial commit rate: one lander over COMMITS tiny files (1 event each, one day) with --max-files-per-batch 1,
on local disk, on moto (S3) and on a MiniDFSCluster (HDFS; tests/minidfs must have been built by the HDFS tests).
Rate = (commits - 1) / (time of the last "delta commit" log line - time of the first): lander's whole per-batch
cycle for a tiny batch (list, decode, part upload, cross-writer check, put-if-absent commit, checkpoint), i.e. the
most commits a second one writer makes; the log itself takes the commit (one put-if-absent) in a part of that.

Usage: scripts/bench_workers.py [throughput|commits|all]   (default all)
Environment: LANDER_BIN [${CARGO_TARGET_DIR:-target}/release/lander], REPS [3], FILES [16], FILES_PER_BATCH [1],
COMMITS [40], BACKENDS ["local s3 hdfs"].
"""
import datetime
import gzip
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing bench_scale must not leave scripts/__pycache__
sys.path.insert(0, os.path.join(REPO, "scripts"))
import bench_scale  # noqa: E402  (build_input, lander_bin)

LOG = "lander=info,lander::modes::cross_check=debug,lander::modes::delta=debug"
EVENTS_PER_FILE = 15129


def run_lander(lander, args, cwd, cpus, log, env=None):
    e = dict(os.environ, RUST_LOG=LOG, NO_COLOR="1", **(env or {}))
    return subprocess.Popen(["taskset", "-c", cpus, lander] + args, cwd=cwd, env=e,
                            stdout=subprocess.PIPE, stderr=open(log, "w"))


def log_stats(paths):
    commits = lost = redos = 0
    checks = []
    for p in paths:
        for line in open(p, errors="replace"):
            if "delta commit" in line and "version=" in line:
                commits += 1
            elif "lost the delta version race" in line:
                lost += 1
            elif "cross-writer check" in line and "WARN" in line:
                redos += 1
            elif "cross-writer check" in line and "ms=" in line:
                checks.append(float(re.search(r"ms=([\d.]+)", line).group(1)))
    return commits, lost, redos, checks


def rows_written(out):
    return sum(int(m) for m in re.findall(r"\((\d+) rows written in this run\)", out))


def throughput():
    lander = bench_scale.lander_bin()
    reps = int(os.environ.get("REPS", "3"))
    n = int(os.environ.get("FILES", "16"))
    fpb = os.environ.get("FILES_PER_BATCH", "1")
    scratch = tempfile.mkdtemp(prefix="lander-bench-workers-")
    try:
        src = os.path.join(scratch, "src")
        bench_scale.build_input(src, n)
        files = sorted(os.path.join(src, f) for f in os.listdir(src))[:n]
        gz = sum(os.path.getsize(f) for f in files)
        print(f"== throughput: {n} files, {gz / 1e6:.1f} MB gzip, {EVENTS_PER_FILE * n} events; "
              f"--max-files-per-batch {fpb}; reps {reps}; load {open('/proc/loadavg').read().split()[:3]}")
        res = {"gzip": [], "one": [], "two": []}
        stats = {"one": [], "two": []}
        orders = [["gzip", "one", "two"], ["one", "two", "gzip"], ["two", "gzip", "one"]]
        for rep in range(reps):
            for tool in orders[rep % 3]:
                work = os.path.join(scratch, "run")
                shutil.rmtree(work, ignore_errors=True)
                landing = os.path.join(work, "landing", "gharchive")
                os.makedirs(landing)
                for f in files:
                    shutil.copy(f, landing)
                subprocess.run(["sync"])
                base = ["run", "--mode", "available-now", "--landing", "landing", "--bronze", "bronze",
                        "--settle-time", "0s", "--max-files-per-batch", fpb]
                t0 = time.monotonic()
                if tool == "gzip":
                    subprocess.run(["sh", "-c", f"gzip -dc {landing}/*.json.gz > /dev/null"], check=True)
                    res["gzip"].append(time.monotonic() - t0)
                    continue
                if tool == "one":
                    specs = [("0,1", ["--checkpoint", "cp"])]
                else:
                    specs = [("0", ["--checkpoint", "cp0", "--worker", "0/2"]),
                             ("1", ["--checkpoint", "cp1", "--worker", "1/2"])]
                logs = [os.path.join(work, f"{tool}-{i}.log") for i in range(len(specs))]
                procs = [run_lander(lander, base + a, work, c, logs[i]) for i, (c, a) in enumerate(specs)]
                outs = []
                for p in procs:
                    out, _ = p.communicate()
                    if p.returncode != 0:
                        sys.exit(f"error: lander exited {p.returncode}: {open(logs[0]).read()[-3000:]}")
                    outs.append(out.decode())
                wall = time.monotonic() - t0
                rows = sum(rows_written(o) for o in outs)
                if rows != EVENTS_PER_FILE * n:
                    sys.exit(f"error: {tool} wrote {rows} rows, expected {EVENTS_PER_FILE * n}")
                res[tool].append(wall)
                stats[tool].append(log_stats(logs))
            print(f"rep {rep + 1}: gzip {res['gzip'][-1]:.2f}s  one worker/2 cores {res['one'][-1]:.2f}s  "
                  f"two workers/1 core each {res['two'][-1]:.2f}s  (commits, lost races, redos) one "
                  f"{stats['one'][-1][:3]} two {stats['two'][-1][:3]}")
        g, o, t = (statistics.median(res[k]) for k in ("gzip", "one", "two"))
        mb = gz / 1e6
        print(f"median: gzip {g:.2f}s; one {o:.2f}s ({mb / o:.1f} MB/s gzip); two {t:.2f}s ({mb / t:.1f} MB/s); "
              f"two/one throughput {o / t:.2f}; one/gzip {o / g:.2f}")
        for k in ("one", "two"):
            commits = sum(s[0] for s in stats[k])
            lost = sum(s[1] for s in stats[k])
            redos = sum(s[2] for s in stats[k])
            checks = [c for s in stats[k] for c in s[3]]
            med = f"{statistics.median(checks):.1f}" if checks else "-"
            p90 = f"{sorted(checks)[int(len(checks) * 0.9)]:.1f}" if checks else "-"
            print(f"{k}: {commits} commits, {lost} lost the version race ({100 * lost / max(commits, 1):.1f}%), "
                  f"{redos} batches run again; {len(checks)} cross-writer checks read the log: median {med} ms, "
                  f"p90 {p90} ms")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def tiny_files(landing, count):
    os.makedirs(landing, exist_ok=True)
    for i in range(count):
        ev = {"id": f"90000{i:05d}", "type": "PushEvent", "actor": {"id": 1, "login": "a"},
              "repo": {"id": 1, "name": "a/b"}, "payload": {}, "public": True,
              "created_at": "2015-01-01T00:00:00Z"}
        with gzip.open(os.path.join(landing, f"t{i:04d}.json.gz"), "wt") as f:
            f.write(json.dumps(ev) + "\n")


def commit_times(log):
    """Times of the commits, and the durations (ms) of the commit attempts that won (put-if-absent + snapshot)."""
    ts, attempts = [], []
    for line in open(log, errors="replace"):
        if "delta commit" in line and "version=" in line:
            stamp = line.split()[0]
            ts.append(datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
        elif "delta commit attempt" in line and "won=true" in line:
            attempts.append(float(re.search(r"ms=([\d.]+)", line).group(1)))
    return ts, attempts


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_moto(scratch):
    port = free_port()
    # moto with atomic conditional writes (tests/moto/server.py says why).
    launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "moto", "server.py")
    p = subprocess.Popen([sys.executable, launcher, "-H", "127.0.0.1", "-p", str(port)],
                         stdout=open(os.path.join(scratch, "moto.log"), "w"), stderr=subprocess.STDOUT)
    ep = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    import boto3
    boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="k",
                 aws_secret_access_key="k").create_bucket(Bucket="bench")
    env = {"AWS_ENDPOINT_URL": ep, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "k"}
    return p, "s3://bench", env


def start_minidfs(scratch):
    proj = os.path.join(REPO, "tests", "minidfs")
    cp = open(os.path.join(proj, "target", "classpath.txt")).read().strip()
    p = subprocess.Popen(["java", "-cp", f"{proj}/target/classes:{cp}", "Main", os.path.join(scratch, "dfs")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=open(os.path.join(scratch, "dfs.log"), "w"), text=True)
    for line in p.stdout:
        if line.startswith("READY "):
            port = re.search(r"namenode=(\d+)", line).group(1)
            http = re.search(r"http=(\d+)", line).group(1)
            return p, f"hdfs://127.0.0.1:{port}", {"HADOOP_USER_NAME": "lander", "LANDER_STORE_TIMEOUT": "30s",
                                                   "_HTTP": http}
    sys.exit("error: MiniDFSCluster did not start")


def commits():
    lander = bench_scale.lander_bin()
    count = int(os.environ.get("COMMITS", "40"))
    reps = int(os.environ.get("REPS", "3"))
    backends = os.environ.get("BACKENDS", "local s3 hdfs").split()
    scratch = tempfile.mkdtemp(prefix="lander-bench-commits-")
    servers = []
    try:
        print(f"\n== serial commit rate: {count} one-event files, --max-files-per-batch 1, reps {reps}; "
              f"load {open('/proc/loadavg').read().split()[:3]}")
        tiny = os.path.join(scratch, "tiny", "gharchive")
        tiny_files(tiny, count)
        for b in backends:
            env = {}
            if b == "s3":
                p, base, env = start_moto(scratch)
                servers.append(p)
            elif b == "hdfs":
                p, base, env = start_minidfs(scratch)
                servers.append(p)
            rates, attempts = [], []
            for rep in range(reps):
                work = os.path.join(scratch, f"{b}-{rep}")
                os.makedirs(work)
                if b == "local":
                    landing, bronze = os.path.join(work, "landing"), os.path.join(work, "bronze")
                    shutil.copytree(os.path.dirname(tiny), landing)
                else:
                    landing, bronze = f"{base}/r{rep}/landing", f"{base}/r{rep}/bronze"
                    put_all(tiny, landing, env)
                log = os.path.join(work, "lander.log")
                pr = run_lander(lander, ["run", "--mode", "available-now", "--landing", landing, "--bronze", bronze,
                                         "--checkpoint", os.path.join(work, "cp"), "--settle-time", "0s",
                                         "--max-files-per-batch", "1"], work, "0,1", log, env)
                pr.communicate()
                if pr.returncode != 0:
                    sys.exit(f"error: lander on {b} exited {pr.returncode}: {open(log).read()[-3000:]}")
                ts, att = commit_times(log)
                if len(ts) != count:
                    sys.exit(f"error: {b}: {len(ts)} commits, expected {count}")
                rates.append((len(ts) - 1) / (ts[-1] - ts[0]))
                attempts.append(statistics.median(att[1:]))  # the first creates the table
            r, a = statistics.median(rates), statistics.median(attempts)
            print(f"{b}: tiny batches/s per rep {[round(x, 1) for x in rates]}; median {r:.1f} ({1000 / r:.0f} ms "
                  f"per batch); commit attempt (put-if-absent + snapshot) median {a:.1f} ms per rep "
                  f"{[round(x, 1) for x in attempts]}: the log takes at most {1000 / a:.0f} commits/s")
    finally:
        for p in servers:
            p.kill()
            p.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def put_all(local_dir, landing, env):
    """Puts the files of local_dir under <landing>/gharchive/: boto3 on S3, WebHDFS on the MiniDFSCluster."""
    names = sorted(os.listdir(local_dir))
    if landing.startswith("s3://"):
        import boto3
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="k", aws_secret_access_key="k")
        bucket, prefix = landing[5:].split("/", 1)
        for n in names:
            s3.upload_file(os.path.join(local_dir, n), bucket, f"{prefix}/gharchive/{n}")
        return
    import requests
    path = landing.split("/", 3)[3]
    for n in names:
        url = f"http://127.0.0.1:{env['_HTTP']}/webhdfs/v1/{path}/gharchive/{n}?op=CREATE&user.name=lander"
        r = requests.put(url, allow_redirects=False)
        r = requests.put(r.headers["Location"], data=open(os.path.join(local_dir, n), "rb").read())
        r.raise_for_status()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("throughput", "all"):
        throughput()
    if what in ("commits", "all"):
        commits()
