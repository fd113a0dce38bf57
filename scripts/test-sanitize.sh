#!/usr/bin/env bash
# npm run test:sanitize: the native, FUSE and TPM tests against the four addons built with
# AddressSanitizer and UndefinedBehaviorSanitizer. The sanitized addons are built in a scratch
# copy of the built tree (the normal build is never replaced), the tests run from that copy with
# the sanitizer runtimes preloaded into node (node itself is not built with them), and any report
# about encfs's native code fails the run (scripts/sanitizer-reports.ts says which count).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf 'test:sanitize: %s\n' "$*" >&2; }

bash scripts/setup.sh

runtime() { readlink -f "$(g++ -print-file-name="$1")"; }
asan=$(runtime libasan.so)
ubsan=$(runtime libubsan.so)
if [ ! -f "$asan" ] || [ ! -f "$ubsan" ]; then
  say "the sanitizer runtimes are missing: apt-get install libasan8 libubsan1 (g++ brings them)"
  exit 1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/encfs-sanitize-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp package.json "$scratch/"
cp -r dist bin "$scratch/"
ln -s "$root/node_modules" "$scratch/node_modules"
ln -s "$root/test" "$scratch/test"
# The addons' sources, without their normal build output.
find native -name build -prune -o -type f \( -name '*.cc' -o -name '*.h' -o -name binding.gyp \) -print | while read -r f; do
  mkdir -p "$scratch/$(dirname "$f")"
  cp "$f" "$scratch/$f"
done

sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
for target in build:native build:native-fuse3 build:native-http build:native-tpm; do
  say "building $target with $sanitize"
  if ! (cd "$scratch" && CXXFLAGS="$sanitize" LDFLAGS="-fsanitize=address,undefined" npm run --silent "$target" -- --jobs 2 >"$scratch/build.log" 2>&1); then
    cat "$scratch/build.log" >&2
    say "$target did not build with the sanitizers"
    exit 1
  fi
done

reports="$scratch/reports"
mkdir -p "$reports"
# ENCFS_SANITIZE_FILES narrows the run (a space-separated list of dist/test/... files).
files=(
  dist/test/native/*.test.js
  dist/test/fuse/*.test.js
  dist/test/http/*.test.js
  dist/test/storage/ranged-get.test.js
  dist/test/storage/native-page-put.test.js
  dist/test/storage/blob-readers.test.js
  dist/test/luks/sector-cipher.test.js
  dist/test/verity/tree.test.js
  dist/test/verity/verity-source.test.js
  dist/test/e2e/remotefs-shutdown.test.js
  dist/test/tpm/*.test.js
  dist/test/attestation/vtpm.test.js
  dist/test/skr/cvm-release.test.js
)
if [ -n "${ENCFS_SANITIZE_FILES:-}" ]; then read -r -a files <<<"$ENCFS_SANITIZE_FILES"; fi
say "running ${#files[@]} test files with libasan and libubsan preloaded into node"
status=0
# Leaks are checked, but do not change a process's exit status: V8's heap, which node never frees
# at exit, is reported as leaked by every node process, and the report checker tells it apart.
# Only node processes get the runtimes (scripts/sanitize-node-only.cjs); ava is started without
# npx, whose shell would drop them.
(cd "$scratch" && LD_PRELOAD="$asan $ubsan" ENCFS_SANITIZE_PRELOAD="$asan $ubsan" \
  NODE_OPTIONS="--require $root/scripts/sanitize-node-only.cjs" \
  ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:malloc_context_size=40" LSAN_OPTIONS="exitcode=0" \
  UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1" \
  ENCFS_SHUTDOWN_ROUNDS="${ENCFS_SHUTDOWN_ROUNDS:-8}" ENCFS_SHUTDOWN_EXIT_BOUND_MS=60000 \
  node node_modules/ava/entrypoints/cli.mjs "${files[@]}") || status=$?
node dist/scripts/sanitizer-reports.js "$reports" || status=1
exit $status
