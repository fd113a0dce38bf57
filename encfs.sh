#!/bin/sh
# Container entry point, as the Go sidecar's /encfs.sh: environment to flags, then remotefs.
# exec, so that remotefs is PID 1's direct child under tini and gets SIGTERM itself: it
# removes the symlinks, unmounts, flushes read-write filesystems and exits 0.
set -eu
set -- "${ENCFS_HOME:-/opt/encfs}/bin/remotefs.js" "$@"
if [ -n "${EncfsSideCarArgs:-}" ]; then set -- "$@" -base64 "$EncfsSideCarArgs"; fi
if [ -n "${LogFile:-}" ]; then set -- "$@" -logfile "$LogFile"; fi
if [ -n "${LogLevel:-}" ]; then set -- "$@" -loglevel "$LogLevel"; fi
exec node "$@"
