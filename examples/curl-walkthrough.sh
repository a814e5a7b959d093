#!/usr/bin/env bash
# A tour of the FHIR API against a running gateway (start one with `cargo run --release`).
# Usage: examples/curl-walkthrough.sh [BASE]   (default http://127.0.0.1:8080)
set -euo pipefail
base="${1:-http://127.0.0.1:8080}"
fhir="$base/fhir"
get() { echo; echo "### GET $1"; curl -sS "$1" | head -c "${2:-1200}"; echo; }

get "$fhir/metadata" 600
get "$fhir/Patient?_count=2&_elements=name,gender,birthDate"
# Pick the first patient and look around them.
pid=$(curl -sS "$fhir/Patient?_count=1" | sed -n 's/.*"id":"\(drchrono-[0-9]*\)".*/\1/p' | head -1)
echo "patient: $pid"
get "$fhir/Patient/$pid?_pretty=true"
get "$fhir/Appointment?patient=$pid&_sort=-date&_count=3&_include=Appointment:practitioner"
get "$fhir/DocumentReference?patient=$pid&category=clinical-note&_count=1"
get "$fhir/Patient?_id=$pid&_revinclude=Appointment:patient&_summary=true" 800
get "$fhir/Appointment?status=noshow&_summary=count"
get "$fhir/Patient?birthdate=ge1980&birthdate=lt1990&gender=female&_total=accurate&_count=1" 600
echo; echo "### strict handling of an unknown parameter (expect 400)"
curl -sS -o /dev/null -w '%{http_code}\n' -H 'Prefer: handling=strict' "$fhir/Patient?shoe-size=9"
echo; echo "### an AI-scribe session (Noa) for a booked DrChrono appointment"
appt=$(curl -sS "$fhir/Appointment?status=booked&date=ge$(date +%F)&_count=20" | sed -n 's/.*"id":"\(drchrono-[0-9]*\)".*/\1/p' | head -1)
if [ -n "$appt" ]; then
  start=$(curl -sS -X POST -H 'content-type: application/fhir+json' \
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
