"""The OTLP codec, both ways: our `Span` ↔ OpenTelemetry spans on the wire.

    from llmobs.core.otlp import decode_request, encode_spans, spans_to_request

    request = spans_to_request(spans)                        # ExportTraceServiceRequest
    assert decode_request(request.SerializeToString()) == spans

`encode_spans` gives `ReadableSpan`s for any OpenTelemetry exporter; `decode_request` reads an
`ExportTraceServiceRequest` body (protobuf, or OTLP/JSON) from any instrumentation. Importing this
package imports the OpenTelemetry SDK and protobuf, so `llmobs` itself imports it lazily.
"""

from llmobs.core.otlp.decode import OTLPDecodeError, decode_message, decode_request, decode_span
from llmobs.core.otlp.encode import encode_span, encode_spans, genai_span_name, spans_to_request

__all__ = [
    "OTLPDecodeError",
    "decode_message",
    "decode_request",
    "decode_span",
    "encode_span",
    "encode_spans",
    "genai_span_name",
    "spans_to_request",
]
