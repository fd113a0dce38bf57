#!/bin/sh
# The skr role of the encfs image, as the Go skr image's /skr.sh: environment (or the first two
# arguments) to flags, then `encfs serve`, which serves the HTTP API or, with ServerType=grpc,
# the keyprovider gRPC service, on localhost:$Port.
#   SkrSideCarArgs (or $1) -> -base64   Port (or $2) -> -port   ServerType -> -server_type
#   LogLevel -> -loglevel               LogFile -> -logfile
#   TestingMismatchedTCB -> -allowTestingMismatchedTCB=… (testing only, as Go's skr test script)
# Unlike Go's script it execs (SIGTERM reaches the server) and writes no ./result file.
# ENCFS_DRY_RUN=1 prints the command instead of running it.
set -eu
config="${SkrSideCarArgs:-${1:-}}"
port="${Port:-${2:-}}"
set -- "${ENCFS_HOME:-/opt/encfs}/bin/encfs.js" serve
if [ -n "$config" ]; then set -- "$@" -base64 "$config"; fi
if [ -n "$port" ]; then set -- "$@" -port "$port"; fi
if [ -n "${LogFile:-}" ]; then set -- "$@" -logfile "$LogFile"; fi
if [ -n "${LogLevel:-}" ]; then set -- "$@" -loglevel "$LogLevel"; fi
if [ -n "${ServerType:-}" ]; then set -- "$@" -server_type "$ServerType"; fi
if [ -n "${TestingMismatchedTCB:-}" ]; then set -- "$@" "-allowTestingMismatchedTCB=$TestingMismatchedTCB"; fi
if [ -n "${ENCFS_DRY_RUN:-}" ]; then printf '%s\n' node "$@"; exit 0; fi
exec node "$@"
