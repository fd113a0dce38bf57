#!/bin/sh
# Container entry point, as the Go sidecar's /encfs.sh: LogFile and LogLevel to flags, then remotefs.
# exec, so that remotefs is PID 1's direct child under tini and gets SIGTERM itself: it
# removes the symlinks, unmounts, flushes read-write filesystems and exits 0.
set -eu
# EncfsSideCarArgs stays in the environment, where remotefs reads it: as -base64 it would sit in
# /proc/PID/cmdline (raw keys, SAS signatures, bearer tokens) for every local user to read.
set -- "${ENCFS_HOME:-/opt/encfs}/bin/remotefs.js" "$@"
if [ -n "${LogFile:-}" ]; then set -- "$@" -logfile "$LogFile"; fi
if [ -n "${LogLevel:-}" ]; then set -- "$@" -loglevel "$LogLevel"; fi
exec node "$@"
