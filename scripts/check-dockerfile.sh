#!/usr/bin/env bash
# Checks that docker/Dockerfile's build stage copies everything the build needs, without a container engine.
#
# It reads the COPY lines of the first stage (up to the next FROM), copies exactly those paths from the build
# context (the repository root, as docker-compose.yml's `context: ..`) into a scratch directory laid out as the
# stage's WORKDIR, and builds the shipped binary there as the stage does (`cargo build --release --locked`): a
# file the stage forgets (build.rs, a module outside src/, a file that include_str! reads) fails here as it fails
# `docker build`, and a `cfg(feature)` gap of the featureless build fails too.
#
# Usage: scripts/check-dockerfile.sh [Dockerfile]   (default docker/Dockerfile)
# The scratch directory is a temporary directory, deleted at exit; the build shares $CARGO_TARGET_DIR (default
# ~/.cache/lander-target) with the tests' release build (no JVM needed: the image has no `hdrs`). The scratch
# directory must not lie inside $CARGO_TARGET_DIR: cargo records the sources of a build as paths relative to the
# target directory when they lie inside it, and lander's crates hash the same wherever they are checked out, so a
# later `cargo build --release` of the clone in the same target directory compared the scratch copy's files, not
# the clone's, and kept the copy's binary after an edit (seen: an edited module built "Fresh").
set -euo pipefail
cd "$(dirname "$0")/.."
context=$PWD
dockerfile=${1:-docker/Dockerfile}
root="$(mktemp -d "${TMPDIR:-/tmp}/lander-dockerfile-check.XXXXXX")"
trap 'rm -rf "$root"' EXIT

fail() {
  echo "check-dockerfile: $*" >&2
  exit 1
}

[ -f "$dockerfile" ] || fail "$dockerfile does not exist"

workdir=/
stage=0
copies=0
saw_build=0
# Continuation lines (a trailing backslash) are joined first.
set -f # no globbing of the instructions' words
while IFS= read -r line; do
  # shellcheck disable=SC2086 # the instruction's words, split on purpose
  set -- $line
  [ $# -gt 0 ] || continue
  instruction=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
  shift
  case "$instruction" in
    FROM)
      stage=$((stage + 1))
      [ "$stage" -gt 1 ] && break
      ;;
    WORKDIR)
      case "$1" in
        /*) workdir=$1 ;;
        *) workdir="${workdir%/}/$1" ;;
      esac
      ;;
    COPY | ADD)
      args=()
      for a in "$@"; do
        case "$a" in
          --from=*) fail "the build stage copies from another stage ($line): not supported by this check" ;;
          --*) ;;
          *) args+=("$a") ;;
        esac
      done
      [ ${#args[@]} -ge 2 ] || fail "cannot read: $line"
      dest=${args[-1]}
      unset 'args[-1]'
      case "$dest" in
        /*) target="$root$dest" ;;
        *) target="$root${workdir%/}/$dest" ;;
      esac
      for src in "${args[@]}"; do
        [ -e "$context/$src" ] || fail "$dockerfile copies $src, which is not in the build context"
        if [ ${#args[@]} -gt 1 ] || [[ "$dest" == */ ]]; then
          # Several sources, or a destination ending in /: copied into the directory.
          mkdir -p "$target"
          cp -a "$context/$src" "$target/"
        else
          mkdir -p "$(dirname "$target")"
          cp -a "$context/$src" "$target"
        fi
        copies=$((copies + 1))
      done
      ;;
    RUN)
      case "$*" in *"cargo build"*) saw_build=1 ;; esac
      ;;
  esac
done < <(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$dockerfile")

[ "$copies" -gt 0 ] || fail "no COPY line in the build stage of $dockerfile"
[ "$saw_build" = 1 ] || fail "the build stage of $dockerfile runs no cargo build: update this check"
crate="$root${workdir%/}"
[ -f "$crate/Cargo.toml" ] || fail "the build stage does not copy Cargo.toml into its WORKDIR $workdir"
echo "check-dockerfile: $copies path(s) copied as $dockerfile's build stage does; building the crate in $crate"
# No git repository around the copy (as in the image): build.rs must cope, and does (commit `unknown`).
# The stage's own build: release profile, no features. In the tests' target directory, whose dependencies the
# release test build shares (scripts/test), so only lander's crates are compiled here (a separate target
# directory cost a cold build of every crate, ~25 minutes on 2 busy cores). It leaves its binary at
# $CARGO_TARGET_DIR/release/lander until the next build there (the tests' `cargo test --release`) links its own.
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/lander-target}"
CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --quiet --manifest-path "$crate/Cargo.toml" \
  || fail "the crate does not build from what $dockerfile copies (a file its build stage misses?)"
"$target_dir/release/lander" --version >/dev/null || fail "the shipped binary does not run"
echo "check-dockerfile: ok"
