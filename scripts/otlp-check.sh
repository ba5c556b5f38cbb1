#!/usr/bin/env bash
# Sends the router's traces to a real OTLP/HTTP receiver and checks what arrives: a receiver
# on loopback decodes each POST /v1/traces with the OpenTelemetry protobuf definitions
# (`opentelemetry-proto` from PyPI), the router (built with `--features otlp`) runs with
# `--otlp-endpoint`, one /classify carries a W3C `traceparent`, and on SIGTERM (which
# flushes the exporter) the script checks that the request span joined the caller's trace,
# that the pipeline's stage spans are its children, and the service name. Prints one JSON
# summary line and exits non-zero on any miss.
#
#   scripts/otlp-check.sh          (ROUTER_BIN: a binary built with --features otlp;
#                                   default target/release/router)
#
# Installs the decoder with pip into $OTLP_TOOLS (default target/otlp-tools, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

router=${ROUTER_BIN:-target/release/router}
[ -x "$router" ] || { echo "otlp-check: build first (cargo build --release --features otlp)" >&2; exit 1; }
PROTO_VERSION=1.29.0
tools=${OTLP_TOOLS:-target/otlp-tools}
stamp="$tools/.installed-$PROTO_VERSION"
if [ ! -e "$stamp" ]; then
    rm -rf "$tools"
    # --target installs beside the system's packages without touching them.
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
        --no-warn-script-location --target "$tools" "opentelemetry-proto==$PROTO_VERSION"
    touch "$stamp"
fi
export PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"

work=$(mktemp -d)
receiver_pid="" router_pid=""
cleanup() {
    if [ -n "$router_pid" ]; then kill "$router_pid" 2>/dev/null || true; fi
    if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/receiver.py" <<'EOF'
"""A minimal OTLP/HTTP trace receiver: decodes every export, appends its spans as JSON."""
import http.server, json, sys
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

out = open(sys.argv[2], "a")

class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            resource = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.write(json.dumps({
                        "path": self.path, "content_type": self.headers["Content-Type"],
                        "service": resource.get("service.name"), "name": s.name,
                        "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                        "parent": s.parent_span_id.hex(),
                        "duration_us": (s.end_time_unix_nano - s.start_time_unix_nano) // 1000,
                        "attributes": {a.key: a.value.string_value or a.value.int_value
                                       for a in s.attributes}}) + "\n")
        out.flush()
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
print(server.server_address[1], flush=True)
server.serve_forever()
EOF
python3 "$work/receiver.py" 0 "$work/spans.jsonl" > "$work/port" &
receiver_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

ROUTER_DECISION_LOG=off "$router" serve --addr 127.0.0.1:0 --data-dir "$work/data" \
    --otlp-endpoint "http://127.0.0.1:$port/v1/traces" > "$work/router.log" 2>&1 &
router_pid=$!
addr=""
for _ in $(seq 600); do
    addr=$(grep -o 'listening on http://[0-9.:]*' "$work/router.log" | head -1 | sed 's|.*http://||') || true
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { echo "otlp-check: the router did not start" >&2; cat "$work/router.log" >&2; exit 1; }
for _ in $(seq 1800); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/ready")" = 200 ] && break
    sleep 0.2
done

trace_id=4bf92f3577b34da6a3ce929d0e0e4736
parent=00f067aa0ba902b7
curl -sf "http://$addr/classify" -H 'content-type: application/json' \
    -H "traceparent: 00-$trace_id-$parent-01" -H 'x-request-id: otlp-check-1' \
    -d '{"prompt": "Write a Python function that reverses a linked list."}' > "$work/decision.json"
kill -TERM "$router_pid"
wait "$router_pid" || true
router_pid=""
sleep 0.5

python3 - "$work/spans.jsonl" "$trace_id" "$parent" <<'EOF'
import collections, json, sys
path, trace_id, parent = sys.argv[1:]
spans = [json.loads(l) for l in open(path)]
ours = [s for s in spans if s["trace_id"] == trace_id]
request = [s for s in ours if s["name"] == "request"]
children = collections.Counter(s["name"] for s in ours
                               if request and s["parent"] == request[0]["span_id"])
summary = {
    "spans_received": len(spans),
    "in_callers_trace": len(ours),
    "request_span_parent": request[0]["parent"] if request else None,
    "request_attributes": request[0]["attributes"] if request else None,
    "children_of_request": dict(children),
    "names_in_trace": dict(collections.Counter(s["name"] for s in ours)),
    "services": sorted({s["service"] for s in spans if s["service"]}),
    "paths": sorted({s["path"] for s in spans}),
    "content_types": sorted({s["content_type"] for s in spans}),
}
print(json.dumps(summary))
# The request joins the caller's trace; the batch (the forward pass) and the per-request
# stages are its children, the embedding under the batch.
ok = (request and request[0]["parent"] == parent
      and {"batch", "search", "score", "decide"} <= set(children)
      and "embed" in summary["names_in_trace"]
      and summary["services"] == ["semantic-router"])
sys.exit(0 if ok else 1)
EOF
