//! OpenTelemetry export (cargo feature `otlp`, flag `--otlp-endpoint`): the `tracing` spans
//! (one `request` span per request, the pipeline's stage spans below it) sent over OTLP/HTTP
//! (protobuf) by a batch exporter on its own thread, so a slow collector never stalls a
//! request. A request with a valid `traceparent` joins the caller's trace.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use super::trace::RequestTrace;

/// The service name spans are exported under.
pub const SERVICE_NAME: &str = "semantic-router";

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The user's fault: an endpoint the exporter cannot use.
    #[error("cannot export traces to {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The layer that exports spans to `endpoint` (e.g. `http://collector:4318/v1/traces`), and
/// the provider to shut down at exit (it flushes what is queued).
pub fn layer<S>(
    endpoint: &str,
) -> Result<
    (
        OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        SdkTracerProvider,
    ),
    OtlpError,
>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| OtlpError::Exporter {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .build();
    let tracer = provider.tracer(SERVICE_NAME);
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}

/// Makes `span` a child of the caller's span (when it sent a valid `traceparent`) and takes
/// the exported span's id as this server's, so the echoed `traceparent` names a real span.
pub fn join_caller_trace(span: &tracing::Span, trace: &mut RequestTrace) {
    let parent = trace.parent_id.as_deref().and_then(|parent| {
        let flags = u8::from_str_radix(&trace.flags, 16).ok()?;
        Some(SpanContext::new(
            TraceId::from_hex(&trace.trace_id).ok()?,
            SpanId::from_hex(parent).ok()?,
            TraceFlags::new(flags),
            true,
            TraceState::default(),
        ))
    });
    if let Some(parent) = parent {
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to join.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    if own.is_valid() {
        trace.trace_id = own.trace_id().to_string();
        trace.span_id = own.span_id().to_string();
    }
}
