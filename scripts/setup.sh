#!/usr/bin/env bash
# Installs what encfs needs on a fresh Debian/Ubuntu machine, then builds it. Idempotent and
# quiet when everything is already there; called by `npm test` and `npm run demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: command (or file) -> package that provides it.
declare -A need=(
  [cryptsetup]=cryptsetup-bin
  [veritysetup]=cryptsetup-bin
  [mkfs.ext4]=e2fsprogs
  [e2fsck]=e2fsprogs
  [fuse2fs]=fuse2fs
  [losetup]=util-linux
  [mount]=mount
  [fusermount]=fuse
  [openssl]=openssl
  [g++]=g++
  [make]=make
  [python3]=python3
  # The vTPM tests (Azure confidential VMs) run a software TPM and provision it with tpm2-tools.
  [swtpm]=swtpm
  [swtpm_setup]=swtpm-tools
  [tpm2_createprimary]=tpm2-tools
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/sbin:/usr/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[ -e /usr/lib/x86_64-linux-gnu/libfuse.so.2 ] || [ -e /lib/x86_64-linux-gnu/libfuse.so.2 ] || ldconfig -p 2>/dev/null | grep -q 'libfuse.so.2 ' || missing+=(libfuse2)
# The libfuse3 data plane (native/fuse3) builds against libfuse3-dev (which brings libfuse3-3).
[ -e /usr/include/fuse3/fuse_lowlevel.h ] || missing+=(libfuse3-dev)
# The libcurl blob fetcher (native/http) builds against libcurl4-openssl-dev (which brings libcurl4).
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
# The TPM addon (native/tpm) builds against tpm2-tss's ESAPI (libtss2-dev brings the TCTIs too).
[ -e /usr/include/tss2/tss2_esys.h ] || missing+=(libtss2-dev)
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing Debian packages: ${pkgs[*]}. Install them (apt-get install ${pkgs[*]}) and run again."
    exit 1
  fi
  say "installing Debian packages: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# npm packages: install when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# fuse-native ships a prebuilt addon that links Debian's libfuse.so.2: prove it loads.
if ! err=$(node -e "require('fuse-native')" 2>&1); then
  say "fuse-native does not load: ${err:0:400}"
  say "it needs Debian's libfuse2 (apt-get install libfuse2)"
  exit 1
fi

# True when $1 is missing or older than any of the other files.
stale() { local out=$1; shift; [ ! -f "$out" ] && return 0; for f in "$@"; do [ "$f" -nt "$out" ] && return 0; done; return 1; }

# The SEV-SNP report and AES-XTS addon (native/): built with npm's own node-gyp against Node's headers.
if stale native/build/Release/encfs_snp_crypto.node native/*.cc native/*.h native/binding.gyp; then
  say "building the SEV-SNP report and AES-XTS addon (native/)"
  npm run --silent build:native >/tmp/encfs-native-build.log 2>&1 || { cat /tmp/encfs-native-build.log >&2; rm -f /tmp/encfs-native-build.log; say "the native addon did not build: it needs g++, make and python3 (apt-get install g++ make python3)"; exit 1; }
  rm -f /tmp/encfs-native-build.log
fi

# An addon the product can do without: build it with `npm run <script>`, and where that fails show
# why and say what is lost. $1 npm script, $2 what it is, $3 what is lost; then the .node and its sources.
optional_addon() {
  local script=$1 what=$2 lost=$3 log
  shift 3
  stale "$@" || return 0
  say "building $what"
  log=$(mktemp /tmp/encfs-native-XXXXXX.log)
  if ! npm run --silent "$script" >"$log" 2>&1; then
    cat "$log" >&2
    say "$what did not build: $lost"
  fi
  rm -f "$log"
}

# The libfuse3 data plane: without it remotefs falls back to fuse-native (libfuse2) and says so (--fuse auto).
optional_addon build:native-fuse3 "the libfuse3 data plane (native/fuse3)" \
  "it needs libfuse3-dev (apt-get install libfuse3-dev); remotefs will use fuse-native (libfuse2)" \
  native/fuse3/build/Release/encfs_fuse3.node native/fuse3/*.cc native/fuse3/*.h native/xts_core.* native/arg_checks.h native/fuse3/binding.gyp
# The libcurl blob fetcher: without it blob reads go through the SDK's Node.js pipeline and remotefs says so (--http auto).
optional_addon build:native-http "the libcurl blob fetcher (native/http)" \
  "it needs libcurl4-openssl-dev (apt-get install libcurl4-openssl-dev); blob reads will use the Node.js pipeline" \
  native/http/build/Release/encfs_http.node native/http/*.cc native/http/*.h native/arg_checks.h native/http/binding.gyp
# The tpm2-tss binding: without it --attestation vtpm (Azure confidential VMs) says what to install; every other mode works.
optional_addon build:native-tpm "the TPM addon (native/tpm)" \
  "it needs libtss2-dev (apt-get install libtss2-dev); --attestation vtpm will not work" \
  native/tpm/build/Release/encfs_tpm.node native/tpm/*.cc native/tpm/binding.gyp

npx --no-install tsc -p .

# Compiled files whose source was moved or deleted would still run as tests: remove them.
find dist -name '*.js' | while read -r js; do rel=${js#dist/}; [ -f "${rel%.js}.ts" ] || rm -f "$js" "$js.map"; done
