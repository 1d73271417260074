#!/usr/bin/env python3
"""An OTLP trace receiver for the tracing tests: the receiving end of a real exporter.

OTLP/HTTP: POST /v1/traces with an ExportTraceServiceRequest (protobuf, optionally gzip).
OTLP/gRPC (--grpc): the TraceService/Export call, served by grpcio with the generated service
of the OpenTelemetry protobuf definitions. Either way the request is decoded with those
definitions (the opentelemetry-proto package) and each span is appended to OUT as one JSON line:
service, scope, name, kind, trace_id, span_id, parent_span_id, links [{trace_id, span_id}],
attributes {key: value}, protocol ("http/protobuf" or "grpc"). Anything else is refused (415
for another content type, 400 for a body that does not decode), so a wrong exporter fails the
test instead of passing silently.

Usage: otlp-receiver.py OUT [--grpc]   (prints the port it listens on, then serves until killed)
"""
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def record(request, protocol):
    """Appends each span of an ExportTraceServiceRequest to OUT, one JSON line."""
    lines = []
    for rs in request.resource_spans:
        resource = {a.key: value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                lines.append(json.dumps({
                    "service": resource.get("service.name"),
                    "scope": ss.scope.name,
                    "name": s.name,
                    "kind": KINDS.get(s.kind, str(s.kind)),
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in s.links],
                    "attributes": {a.key: value(a.value) for a in s.attributes},
                    "protocol": protocol,
                }))
    with open(sys.argv[1], "a") as out:
        for line in lines:
            out.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/traces":
            return self.reply(404, b"")
        if self.headers.get("Content-Type") != "application/x-protobuf":
            return self.reply(415, b"")
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:
            return self.reply(400, b"")
        record(request, "http/protobuf")
        self.reply(200, ExportTraceServiceResponse().SerializeToString())

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_grpc():
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            record(request, "grpc")
            return ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if "--grpc" in sys.argv[2:]:
    serve_grpc()
else:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
