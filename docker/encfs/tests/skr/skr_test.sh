#!/bin/sh
# /tests/skr/skr_test.sh, as in the Go skr image: the skr sidecar for tests of a mismatched TCB.
#   SkrSideCarArgs (or $1)        -> -base64
#   TestingMismatchedTCB (or $2)  -> -allowTestingMismatchedTCB=<value> (testing only)
#   Port (or $3)                  -> -port
#   LogFile, LogLevel             -> -logfile, -loglevel
# It runs /skr.sh with these, which execs the server (SIGTERM reaches it; no ./result file).
SkrSideCarArgs="${SkrSideCarArgs:-${1:-}}"
TestingMismatchedTCB="${TestingMismatchedTCB:-${2:-}}"
Port="${Port:-${3:-}}"
echo "TestingMismatchedTCB = $TestingMismatchedTCB"
echo "Port = $Port"
export SkrSideCarArgs TestingMismatchedTCB Port
exec "${ENCFS_SKR_SH:-/skr.sh}"
