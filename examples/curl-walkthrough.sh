#!/usr/bin/env bash
# A tour of the FHIR API against a running gateway (start one with `cargo run --release`).
# Usage: examples/curl-walkthrough.sh [BASE]   (default http://127.0.0.1:8080)
# The demo is behind SMART on FHIR: the script gets a read token for the demo backend client
# (client_secret_basic). For the AI-scribe step it needs a write token in WRITE_TOKEN, e.g.
#   WRITE_TOKEN=$(cargo run -q -p gateway --example backend-client -- http://127.0.0.1:8080 --token) examples/curl-walkthrough.sh
set -euo pipefail
base="${1:-http://127.0.0.1:8080}"
fhir="$base/fhir"
token=$(curl -sS -u demo-backend:demo-secret -d grant_type=client_credentials -d 'scope=system/*.rs' "$base/auth/token" \
  | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
auth=(-H "Authorization: Bearer $token")
get() { echo; echo "### GET $1"; curl -sS "${auth[@]}" "$1" | head -c "${2:-1200}"; echo; }

echo "### without a token (expect 401)"
curl -sS -o /dev/null -w '%{http_code}\n' "$fhir/Patient?_count=1"

get "$fhir/metadata" 600
get "$fhir/Patient?_count=2&_elements=name,gender,birthDate"
# Pick the first patient and look around them.
pid=$(curl -sS "${auth[@]}" "$fhir/Patient?_count=1" | sed -n 's/.*"id":"\(drchrono-[0-9]*\)".*/\1/p' | head -1)
echo "patient: $pid"
get "$fhir/Patient/$pid?_pretty=true"
get "$fhir/Appointment?patient=$pid&_sort=-date&_count=3&_include=Appointment:practitioner"
get "$fhir/DocumentReference?patient=$pid&category=clinical-note&_count=1"
get "$fhir/Patient?_id=$pid&_revinclude=Appointment:patient&_summary=true" 800
get "$fhir/Appointment?status=noshow&_summary=count"
get "$fhir/Patient?birthdate=ge1980&birthdate=lt1990&gender=female&_total=accurate&_count=1" 600
echo; echo "### strict handling of an unknown parameter (expect 400)"
curl -sS -o /dev/null -w '%{http_code}\n' "${auth[@]}" -H 'Prefer: handling=strict' "$fhir/Patient?shoe-size=9"
echo; echo "### an AI-scribe session (Noa) for a booked DrChrono appointment"
appt=$(curl -sS "${auth[@]}" "$fhir/Appointment?status=booked&date=ge$(date +%F)&_count=20" | sed -n 's/.*"id":"\(drchrono-[0-9]*\)".*/\1/p' | head -1)
if [ -z "${WRITE_TOKEN:-}" ]; then
  echo "(set WRITE_TOKEN to start a scribe session: see the usage line at the top)"
elif [ -n "$appt" ]; then
  start=$(curl -sS -X POST -H "Authorization: Bearer $WRITE_TOKEN" -H 'content-type: application/fhir+json' \
    -d '{"resourceType":"Parameters","parameter":[{"name":"language","valueCode":"en-US"}]}' \
    "$fhir/Appointment/$appt/\$start-scribe")
  echo "$start" | head -c 600; echo
  enc=$(echo "$start" | sed -n 's/.*"reference":"\(Encounter\/noa-[0-9a-f-]*\)".*/\1/p' | head -1)
  [ -n "$enc" ] && get "$fhir/$enc" 800
fi
get "$fhir/OperationDefinition/Appointment-start-scribe" 600
echo "### readiness and metrics"
curl -sS "$base/readyz"; echo
curl -sS "$base/metrics" | grep -m3 fhir_gateway_vendor_calls_total
