#!/bin/sh
# /tests/skr/skr_client.sh, as in the Go skr image (its ACI example runs it as a container next to
# the sidecar): every 5 s, asks the sidecar on localhost:8080 to release a key, writes the answer
# to /keyrelease.out and prints it, until stopped.
#   SkrClientMAAEndpoint (or $1)  the MAA endpoint named in the key's release policy
#   SkrClientAKVEndpoint (or $2)  the Key Vault or Managed HSM endpoint
#   SkrClientKID (or $3)          the key's name
# Port overrides 8080. Unlike Go's, it exits on SIGTERM (it is PID 1 in its container).
SkrClientMAAEndpoint="${SkrClientMAAEndpoint:-${1:-}}"
SkrClientAKVEndpoint="${SkrClientAKVEndpoint:-${2:-}}"
SkrClientKID="${SkrClientKID:-${3:-}}"
echo "SkrClientMAAEndpoint = $SkrClientMAAEndpoint"
echo "SkrClientAKVEndpoint = $SkrClientAKVEndpoint"
echo "SkrClientKID = $SkrClientKID"
trap 'exit 0' TERM INT
while true; do
  curl -sS --max-time 120 -X POST -H 'Content-Type: application/json' \
    -d "{\"maa_endpoint\": \"$SkrClientMAAEndpoint\", \"akv_endpoint\": \"$SkrClientAKVEndpoint\", \"kid\": \"$SkrClientKID\"}" \
    -o /keyrelease.out "http://localhost:${Port:-8080}/key/release"
  cat /keyrelease.out
  echo
  sleep 5 &
  wait $!
done
