#!/bin/sh
# Container entry point, as the Go sidecar's /encfs.sh: environment to flags, then remotefs.
# Like Go's, it also takes the values positionally (encfs.sh <b64 config> [log file] [log level]),
# each used only when its environment variable is empty; arguments starting with - are
# passed on to remotefs as flags.
# exec, so that remotefs is PID 1's direct child under tini and gets SIGTERM itself: it
# removes the symlinks, unmounts, flushes read-write filesystems and exits 0.
set -eu
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  EncfsSideCarArgs="${EncfsSideCarArgs:-$1}"; shift
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then LogFile="${LogFile:-$1}"; shift; fi
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then LogLevel="${LogLevel:-$1}"; shift; fi
fi
set -- "${ENCFS_HOME:-/opt/encfs}/bin/remotefs.js" "$@"
if [ -n "${EncfsSideCarArgs:-}" ]; then set -- "$@" -base64 "$EncfsSideCarArgs"; fi
if [ -n "${LogFile:-}" ]; then set -- "$@" -logfile "$LogFile"; fi
if [ -n "${LogLevel:-}" ]; then set -- "$@" -loglevel "$LogLevel"; fi
exec node "$@"
