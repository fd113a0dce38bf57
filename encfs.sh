#!/bin/sh
# Container entry point, as the Go sidecar's /encfs.sh: environment to flags, then remotefs.
# Like Go's, it also takes the values positionally (encfs.sh <b64 config> [log file] [log level]),
# each used only when its environment variable is empty; arguments starting with - are
# passed on to remotefs as flags.
# exec, so that remotefs is PID 1's direct child under tini and gets SIGTERM itself: it
# removes the symlinks, unmounts, flushes read-write filesystems and exits 0.
#
# The image has a second role, the Go skr sidecar's (encfs serve: the HTTP API, or the
# keyprovider gRPC service with ServerType=grpc), which /skr.sh runs; deployments that set the
# command to /skr.sh get it directly; the AASP role (Go's /bin/aasp) too. Here
# EncfsRole=encfs|skr|aasp chooses; without it,
# EncfsSideCarArgs set -> encfs; else SkrSideCarArgs or ServerType set -> skr; else arguments
# (a positional configuration or remotefs flags) -> encfs; else, no configuration at all, skr:
# what the Go skr image does when started with no environment (the API on localhost:8080).
# ENCFS_DRY_RUN=1 prints the command instead of running it.
# In the image, the programs go by the Go images' paths (/bin/remotefs, /bin/aasp), so that the
# first log line reads as Go's ("Starting /bin/remotefs..."), which runbooks look for; from a
# checkout (ENCFS_HOME), by the checkout's.
program() {
  if [ -z "${ENCFS_HOME:-}" ] && [ -e "/bin/$1" ]; then echo "/bin/$1"; else echo "${ENCFS_HOME:-/opt/encfs}/bin/$1.js"; fi
}
role="${EncfsRole:-}"
if [ -z "$role" ]; then
  if [ -n "${EncfsSideCarArgs:-}" ]; then role=encfs
  elif [ -n "${SkrSideCarArgs:-}" ] || [ -n "${ServerType:-}" ]; then role=skr
  elif [ $# -gt 0 ]; then role=encfs
  else role=skr
  fi
fi
case "$role" in
  encfs) ;;
  skr) exec "$(dirname "$0")/skr.sh" "$@" ;;
  # Go's AASP sidecar (/bin/aasp): keyprovider gRPC (agent "aasp") on 127.0.0.1:50000 and the
  # HTTP API on 8080 in one process; it reads AaspSideCarArgs, AZURE_CLIENT_ID and takes its flags.
  aasp)
    set -- "$(program aasp)" "$@"
    if [ -n "${ENCFS_DRY_RUN:-}" ]; then printf '%s\n' node "$@"; exit 0; fi
    exec node "$@" ;;
  *) echo "encfs.sh: EncfsRole must be encfs, skr or aasp, got \"$role\"" >&2; exit 2 ;;
esac
set -eu
# The configuration goes to remotefs in the environment (exported), never as -base64: on the
# command line it would sit in /proc/PID/cmdline (raw keys, SAS signatures, bearer tokens) for
# every local user to read.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  EncfsSideCarArgs="${EncfsSideCarArgs:-$1}"; shift
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then LogFile="${LogFile:-$1}"; shift; fi
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then LogLevel="${LogLevel:-$1}"; shift; fi
fi
if [ -n "${EncfsSideCarArgs:-}" ]; then export EncfsSideCarArgs; fi
set -- "$(program remotefs)" "$@"
if [ -n "${LogFile:-}" ]; then set -- "$@" -logfile "$LogFile"; fi
if [ -n "${LogLevel:-}" ]; then set -- "$@" -loglevel "$LogLevel"; fi
if [ -n "${ENCFS_DRY_RUN:-}" ]; then printf '%s\n' "$@"; exit 0; fi
# Run by its own first line, which carries remotefs's Node.js flags (bin/remotefs.js).
exec "$@"
