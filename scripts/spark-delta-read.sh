#!/usr/bin/env bash
# Spark 4 with Delta reads lander's Delta bronze on HDFS.
#
# Starts the tests' MiniDFSCluster (tests/minidfs), runs `lander run --mode once --table-format delta` on the
# repository's sample landing (tests/fixtures/landing, or LANDER_LANDING) into hdfs://.../bronze, then reads every
# dataset with Spark (`spark.read.format("delta")`, the jars io.delta:delta-spark_2.13 from Maven Central) and
# prints, per dataset, Spark's row count, distinct keys and table version against the rows lander reported.
# Exits 1 on any difference.
#
#   scripts/spark-delta-read.sh            # ~1.5 min warm on 2 cores; the first run downloads ~400 MB
#
# Environment: LANDER_SPARK_VENV (the virtualenv with delta-spark, default ~/.cache/lander-spark-venv),
# LANDER_BIN (a built lander; default: `cargo build` into CARGO_TARGET_DIR), LANDER_LANDING, JAVA_HOME (17).
#
# Versions: PyPI's delta-spark 4.4.1 pins pyspark 4.2.0 (Scala 2.13, Hadoop 3.5 client inside); Maven Central
# serves delta-spark_2.13 up to 4.4.0, which is built against Spark 4.2.0, so the jars are 4.4.0.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

DELTA_SPARK_PY=4.4.1
DELTA_SPARK_JARS=4.4.0
export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
export HADOOP_USER_NAME=lander SPARK_LOCAL_IP=127.0.0.1
venv="${LANDER_SPARK_VENV:-$HOME/.cache/lander-spark-venv}"
landing="${LANDER_LANDING:-$repo/tests/fixtures/landing}"
started=$(date +%s.%N)
since() { awk -v s="$started" -v n="$(date +%s.%N)" 'BEGIN{printf "%.1f", n - s}'; }

# 1. Spark + Delta's Python package in their own virtualenv (pyspark is ~400 MB; kept apart from the tests').
if ! "$venv/bin/python" -c "import delta, pyspark" 2>/dev/null; then
  echo "installing delta-spark==$DELTA_SPARK_PY into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "delta-spark==$DELTA_SPARK_PY"
fi

# 2. lander.
if [ -z "${LANDER_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lander-target}"
  cargo build --quiet --bin lander
  LANDER_BIN="$CARGO_TARGET_DIR/debug/lander"
fi

# 3. A MiniDFSCluster, as the tests start it: it stops when its stdin (a fifo we hold) closes.
if [ ! -f tests/minidfs/target/classpath.txt ] || [ ! -f tests/minidfs/target/classes/Main.class ]; then
  mvn -q -B -f tests/minidfs/pom.xml package dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/lander-spark-delta.XXXXXX")
mkfifo "$work/stdin"
java -cp "tests/minidfs/target/classes:$(cat tests/minidfs/target/classpath.txt)" Main "$work/dfs" \
  <"$work/stdin" >"$work/minidfs.out" 2>"$work/minidfs.log" &
dfs_pid=$!
exec 3>"$work/stdin"
cleanup() {
  exec 3>&- || true
  wait "$dfs_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 240); do
  grep -q '^READY ' "$work/minidfs.out" && break
  kill -0 "$dfs_pid" 2>/dev/null || { cat "$work/minidfs.log" >&2; exit 1; }
  sleep 0.5
done
port=$(sed -n 's/^READY namenode=\([0-9]*\).*/\1/p' "$work/minidfs.out")
[ -n "$port" ] || { echo "MiniDFSCluster did not start" >&2; tail -50 "$work/minidfs.log" >&2; exit 1; }
bronze="hdfs://127.0.0.1:$port/lander/bronze"
echo "MiniDFSCluster on 127.0.0.1:$port after $(since)s"

# 4. lander writes the Delta bronze (the table format is explicit, whatever the default).
"$LANDER_BIN" run --mode once --settle-time 0s --table-format delta \
  --landing "$landing" --bronze "$bronze" --checkpoint "$work/checkpoint" >"$work/lander.out"
cat "$work/lander.out"
# "<dataset>: batch N committed: ... R rows written, ..." -> dataset R (summed over batches).
awk -F': ' '/: batch [0-9]+ committed: /{split($3, a, " rows written"); n=split(a[1], b, " "); rows[$1] += b[n]}
  END {for (d in rows) print d, rows[d]}' "$work/lander.out" | sort >"$work/lander-rows.txt"
echo "lander done after $(since)s"

# 5. Spark reads every dataset lander committed. Ivy resolves the jars from Maven Central only (the default
#    chain also asks a Spark packages host this network cannot reach) and caches them in ~/.ivy2.5.2.
cat >"$work/ivysettings.xml" <<'EOF'
<ivysettings>
  <settings defaultResolver="default"/>
  <resolvers>
    <chain name="default" returnFirst="true">
      <ibiblio name="local-m2-cache" m2compatible="true" root="file://${user.home}/.m2/repository/"/>
      <ibiblio name="central" m2compatible="true" root="https://repo1.maven.org/maven2/"/>
    </chain>
  </resolvers>
</ivysettings>
EOF
SPARK_STARTED=$started "$venv/bin/python" - "$bronze" "$work/lander-rows.txt" "$work/ivysettings.xml" \
  "io.delta:delta-spark_2.13:$DELTA_SPARK_JARS" <<'EOF'
import os, sys, time
from pyspark.sql import SparkSession
from delta.tables import DeltaTable

bronze, rows_file, ivy, package = sys.argv[1:5]
started = float(os.environ["SPARK_STARTED"])
spark = (SparkSession.builder.master("local[2]").appName("lander-delta-read")
         .config("spark.jars.packages", package)
         .config("spark.jars.ivySettings", ivy)
         .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
         .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
         .config("spark.sql.shuffle.partitions", "2")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
print(f"spark {spark.version} with {package} up after {time.time() - started:.1f}s")
lander = dict(l.split() for l in open(rows_file) if l.strip())
if not lander:
    sys.exit("lander committed nothing")
bad = 0
print(f"{'dataset':<10} {'lander rows':>11} {'spark rows':>10} {'distinct keys':>13} {'version':>7} {'secs':>5}  partitions")
for ds, expected in sorted(lander.items()):
    url, t = f"{bronze}/{ds}", time.time()
    df = spark.read.format("delta").load(url)
    n = df.count()
    key = "event_key" if "event_key" in df.columns else None
    keys = df.select(key).distinct().count() if key else n
    detail = DeltaTable.forPath(spark, url).detail().collect()[0]
    version = DeltaTable.forPath(spark, url).history(1).collect()[0]["version"]
    secs = time.time() - t
    ok = n == int(expected) and keys == n
    bad += not ok
    print(f"{ds:<10} {expected:>11} {n:>10} {keys:>13} {version:>7} {secs:>5.1f}  {','.join(detail['partitionColumns'])}"
          f"{'' if ok else '  MISMATCH'}")
print(f"spark read done after {time.time() - started:.1f}s")
spark.stop()
sys.exit(1 if bad else 0)
EOF
echo "total $(since)s"
