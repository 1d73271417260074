//! Exporting spans with OTLP when the standard OpenTelemetry variables ask for it
//! (docs/architecture.md §2.8).
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | either one turns export on; where spans go (`…/v1/traces` is added to the first) |
//! | `OTEL_TRACES_EXPORTER` | `otlp` turns export on (to `http://localhost:4318`), `none` keeps it off |
//! | `OTEL_SDK_DISABLED` | `true` keeps it off whatever else is set |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_TRACES_PROTOCOL` | `http/protobuf` (the default, port 4318) or `grpc` (port 4317); `http/json` is refused at start, naming the variable |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `…_TRACES_HEADERS`, `…_TIMEOUT` | headers (`key=value,…`) and the export timeout |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the sampler (`parentbased_always_on` by default) |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource; the service name defaults to the process's (`suitex-events-worker`, `suitex-web` …) |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, … | the batch span processor |
//!
//! With none of them set nothing is installed: no exporter, no thread, and every span of
//! [`crate::trace`] stays disabled (a branch). Spans are sent from the batch span processor's own
//! thread — with a blocking HTTP client, or for `grpc` through tonic on a one-thread runtime the
//! exporter owns — so an emit never waits on the collector.

use crate::error::ConfigError;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The instrumentation scope the SDK's spans are reported under.
pub const SCOPE: &str = "suitex-events";

/// An installed OTLP exporter. Dropping it (or [`Telemetry::shutdown`]) sends what is buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// The gRPC transport's runtime (`None` for http/protobuf); stopped after the provider.
    runtime: Option<tokio::runtime::Runtime>,
}

/// The transport the `OTEL_*` variables ask spans to be exported by (see the module's table),
/// or `None` for no export.
fn requested_by(var: impl Fn(&str) -> Option<String>) -> Result<Option<Protocol>, ConfigError> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let on = match set("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "none" => return Ok(None),
        Some(v) if v == "otlp" => true,
        Some(v) => {
            return Err(ConfigError::new(
                "OTEL_TRACES_EXPORTER",
                format!("is {v:?}; this SDK exports spans with otlp (or none)"),
            ));
        }
        None => {
            set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        }
    };
    if !on {
        return Ok(None);
    }
    protocol_by(&var).map(Some)
}

/// The OTLP transports this SDK exports with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `http/protobuf`, the default: from the batch span processor's thread, a blocking client.
    HttpProtobuf,
    /// `grpc`: tonic, on a one-thread Tokio runtime of the exporter's own.
    Grpc,
}

/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`
/// (the specification's order and default); a value this SDK cannot use is refused by name.
fn protocol_by(var: &impl Fn(&str) -> Option<String>) -> Result<Protocol, ConfigError> {
    for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        let Some(p) = var(name).filter(|v| !v.trim().is_empty()) else { continue };
        return match p.trim() {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            _ => Err(ConfigError::new(
                name,
                format!(
                    "is {p:?}; this SDK exports OTLP as http/protobuf (the default) or grpc, which the OpenTelemetry Collector, Grafana Tempo, Jaeger and Cloud Trace's OTLP endpoint take"
                ),
            )),
        };
    }
    Ok(Protocol::HttpProtobuf)
}

impl Telemetry {
    /// Builds the exporter the `OTEL_*` variables ask for, or `None` when they ask for none.
    /// `service` is the service name when `OTEL_SERVICE_NAME` is not set.
    pub fn from_env(service: &str) -> Result<Option<Telemetry>, ConfigError> {
        let Some(protocol) = requested_by(|name| std::env::var(name).ok())? else {
            return Ok(None);
        };
        let unusable = |e: opentelemetry_otlp::ExporterBuildError| {
            ConfigError::new("OTEL_EXPORTER_OTLP_ENDPOINT", format!("cannot be used: {e}"))
        };
        let (exporter, runtime) = match protocol {
            Protocol::HttpProtobuf => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .build()
                    .map_err(unusable)?;
                (exporter, None)
            }
            Protocol::Grpc => {
                // tonic's channel runs its connection on a Tokio runtime, made here and kept as
                // long as the exporter: the batch span processor's thread, which drives each
                // export, has none (opentelemetry-otlp's documented setup without
                // `#[tokio::main]`). One thread: it only carries spans.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("suitex-otlp")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        ConfigError::new("OTEL_EXPORTER_OTLP_PROTOCOL", format!("grpc: no runtime: {e}"))
                    })?;
                let exporter = {
                    let _in_runtime = runtime.enter();
                    opentelemetry_otlp::SpanExporter::builder().with_tonic().build().map_err(unusable)?
                };
                (exporter, Some(runtime))
            }
        };
        let mut resource = Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty()) {
            resource = resource.with_service_name(service.to_string());
        }
        let provider = SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build();
        Ok(Some(Telemetry { provider, runtime }))
    }

    /// The `tracing` layer that records the SDK's spans ([`SdkSpans`]) into this exporter. It
    /// filters nothing for the other layers: put it beside a subscriber's global filter, which
    /// must let `suitex_events` spans at INFO through.
    pub fn layer<S>(
        &self,
    ) -> SdkSpans<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        SdkSpans(tracing_opentelemetry::layer().with_tracer(self.provider.tracer(SCOPE)))
    }

    /// Sends every finished span now (a short-lived command before it exits, a test).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "sending spans to the OTLP endpoint failed");
        }
    }

    /// Sends what is buffered and stops the exporter's thread.
    pub fn shutdown(self) {}
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "stopping the span exporter");
        }
        // Without waiting for its thread: a runtime may not be dropped inside another's
        // asynchronous context (the command line's).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The OpenTelemetry layer restricted to the SDK's own spans (target `suitex_events`, INFO and
/// above): it is told of nothing else — no other crate's spans, no events — so a client
/// library's spans are not exported and logging costs the exporter nothing.
///
/// Why a wrapper and not a per-layer filter (`Layer::with_filter`): with a per-layer filter on
/// the exporter beside the log layer's, spans and log lines went missing from both whenever the
/// log filter enabled DEBUG for the SDK (tracing-subscriber's per-layer filter state is shared
/// per thread and is lost when a span or event is dispatched while another is; tokio-rs/tracing
/// #2704). This wrapper leaves filtering to the subscriber's one global filter.
#[derive(Debug)]
pub struct SdkSpans<L>(L);

impl<L> SdkSpans<L> {
    fn wants(meta: &tracing::Metadata<'_>) -> bool {
        meta.is_span() && *meta.level() <= tracing::Level::INFO && meta.target().starts_with("suitex_events")
    }

    fn wants_id<S>(id: &tracing::span::Id, ctx: &tracing_subscriber::layer::Context<'_, S>) -> bool
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        ctx.metadata(id).is_some_and(Self::wants)
    }
}

impl<S, L> Layer<S> for SdkSpans<L>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }
    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if Self::wants(attrs.metadata()) {
            self.0.on_new_span(attrs, id, ctx);
        }
    }
    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if Self::wants_id(id, &ctx) {
            self.0.on_record(id, values, ctx);
        }
    }
    fn on_follows_from(&self, id: &tracing::span::Id, follows: &tracing::span::Id, ctx: Context<'_, S>) {
        if Self::wants_id(id, &ctx) && Self::wants_id(follows, &ctx) {
            self.0.on_follows_from(id, follows, ctx);
        }
    }
    fn on_enter(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if Self::wants_id(id, &ctx) {
            self.0.on_enter(id, ctx);
        }
    }
    fn on_exit(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if Self::wants_id(id, &ctx) {
            self.0.on_exit(id, ctx);
        }
    }
    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        if Self::wants_id(&id, &ctx) {
            self.0.on_close(id, ctx);
        }
    }
    fn on_id_change(&self, old: &tracing::span::Id, new: &tracing::span::Id, ctx: Context<'_, S>) {
        if Self::wants_id(old, &ctx) {
            self.0.on_id_change(old, new, ctx);
        }
    }
    // SAFETY: forwards to the wrapped layer, whose pointers are valid for as long as `self` is
    // (`OpenTelemetrySpanExt` finds the OpenTelemetry layer's context through this).
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: as above.
            unsafe { self.0.downcast_raw(id) }
        }
    }
}

/// For a process whose only subscriber is the exporter (the PHP extension, the C library):
/// installs it as the global `tracing` subscriber when the `OTEL_*` variables ask for it.
/// Returns the exporter to keep (and flush); `None` when they ask for none or a global
/// subscriber was installed already (the host's own).
pub fn install_global(service: &str) -> Result<Option<Telemetry>, ConfigError> {
    use tracing_subscriber::layer::SubscriberExt as _;
    let Some(telemetry) = Telemetry::from_env(service)? else { return Ok(None) };
    // The one global filter: the SDK's spans, nothing else is dispatched at all.
    let only_sdk =
        tracing_subscriber::filter::Targets::new().with_target("suitex_events", tracing::Level::INFO);
    let subscriber = tracing_subscriber::registry().with(only_sdk).with(telemetry.layer());
    match tracing::subscriber::set_global_default(subscriber) {
        Ok(()) => Ok(Some(telemetry)),
        Err(_) => Ok(None),
    }
}

/// This process's exporter, for [`export_from_this_process`]: (pid, exporter), kept for the
/// process's life.
static PROCESS: parking_lot::Mutex<Option<(u32, Option<Telemetry>)>> = parking_lot::Mutex::new(None);

/// For a library loaded into a host process (the PHP extension, the C library): installs the
/// exporter the `OTEL_*` variables ask for ([`install_global`]) once per process, on first use —
/// after php-fpm forked its workers, like the emitter's runtime. A child forked after it was
/// installed exports nothing: the batch span processor's thread does not exist in it and the
/// global subscriber is the parent's.
pub fn export_from_this_process(service: &str) -> Result<(), ConfigError> {
    let pid = std::process::id();
    let mut slot = PROCESS.lock();
    match slot.as_ref() {
        Some((p, _)) if *p == pid => return Ok(()),
        Some(_) => {
            // Inherited across fork(): never dropped here (its shutdown would wait on a thread
            // that does not exist in this process).
            std::mem::forget(slot.take());
            *slot = Some((pid, None));
            return Ok(());
        }
        None => {}
    }
    *slot = Some((pid, install_global(service)?));
    Ok(())
}

/// Sends the spans this process's exporter still buffers (module shutdown, an emitter freed).
pub fn flush_this_process() {
    if let Some((pid, Some(t))) = PROCESS.lock().as_ref()
        && *pid == std::process::id()
    {
        t.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted_with(vars: &[(&str, &str)]) -> Result<bool, ConfigError> {
        requested_by(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
            .map(|p| p.is_some())
    }

    #[test]
    fn nothing_is_exported_unless_the_otel_variables_ask_for_it() {
        assert!(!wanted_with(&[]).unwrap());
        assert!(!wanted_with(&[("OTEL_SERVICE_NAME", "x"), ("OTEL_TRACES_SAMPLER", "always_on")]).unwrap());
        assert!(wanted_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).unwrap());
        assert!(wanted_with(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")]).unwrap());
        assert!(wanted_with(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap());
        assert!(
            !wanted_with(&[("OTEL_TRACES_EXPORTER", "none"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c")])
                .unwrap()
        );
        assert!(
            !wanted_with(&[("OTEL_SDK_DISABLED", "true"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c")])
                .unwrap()
        );
        assert!(!wanted_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).unwrap());
    }

    #[test]
    fn an_exporter_or_protocol_this_sdk_cannot_use_is_refused_by_name() {
        let e = wanted_with(&[("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
        assert!(e.to_string().starts_with("OTEL_TRACES_EXPORTER is \"zipkin\""), "{e}");
        let e = wanted_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL is \"http/json\""), "{e}");
        assert!(e.to_string().contains("http/protobuf (the default) or grpc"), "{e}");
        let e = wanted_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is \"thrift\""), "{e}");
    }

    fn protocol_with(vars: &[(&str, &str)]) -> Result<Protocol, ConfigError> {
        protocol_by(&|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn the_protocol_is_http_protobuf_unless_grpc_is_asked_for_the_traces_setting_first() {
        assert_eq!(protocol_with(&[]).unwrap(), Protocol::HttpProtobuf);
        assert_eq!(protocol_with(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap(), Protocol::Grpc);
        assert_eq!(protocol_with(&[("OTEL_EXPORTER_OTLP_PROTOCOL", " ")]).unwrap(), Protocol::HttpProtobuf);
        assert_eq!(
            protocol_with(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
            ])
            .unwrap(),
            Protocol::HttpProtobuf
        );
    }
}

#[cfg(test)]
mod sdk_spans_tests {
    use super::*;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Collects what the layer exports.
    #[derive(Debug, Clone, Default)]
    struct Collected(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collected {
        async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// A `Telemetry` whose spans are collected in memory, each as it ends.
    fn collecting() -> (Collected, Telemetry) {
        let collected = Collected::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(collected.clone()).build();
        (collected, Telemetry { provider, runtime: None })
    }

    #[test]
    fn only_the_sdks_spans_at_info_are_exported_and_the_logs_filter_decides_nothing_for_them() {
        let (collected, telemetry) = collecting();
        // As the command line sets it up: one global filter that logs the SDK at DEBUG.
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("suitex_events=debug,other_crate=info"))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
            .with(telemetry.layer());
        tracing::subscriber::with_default(subscriber, || {
            let receive = tracing::info_span!(parent: None, "receive", otel.name = "raw-sub receive");
            let append = tracing::info_span!(target: "suitex_events::worker::worker", parent: None, "append", otel.name = "INSERT event_store");
            let _entered = append.enter();
            tracing::debug!("a log line inside the span");
            tracing::info_span!(target: "other_crate", "client call").in_scope(|| {});
            tracing::debug_span!("a debug span").in_scope(|| {});
            drop(_entered);
            drop(append);
            drop(receive);
        });
        telemetry.flush();
        let names: Vec<String> = collected.0.lock().unwrap().iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["INSERT event_store", "raw-sub receive"]);
        let spans = collected.0.lock().unwrap();
        assert!(spans.iter().all(|s| s.events.is_empty()), "log lines are not copied into spans");
    }

    /// The INSERT span a PHP worker holds around `EventStore::create()` (and the Rust worker's):
    /// linked to the receive span; a failure makes it an error span with the database's message.
    #[cfg(feature = "consume")]
    #[test]
    fn an_append_span_is_linked_to_its_receive_span_and_a_failed_insert_is_an_error_naming_why() {
        use opentelemetry::trace::Status;
        let (collected, telemetry) = collecting();
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        tracing::subscriber::with_default(subscriber, || {
            let receive = tracing::info_span!(parent: None, "receive", otel.name = "raw-sub receive");
            let failed = crate::trace::AppendSpan::new(crate::trace::append_span([&receive], 1));
            assert!(failed.is_recorded());
            failed.fail("1213 Deadlock found when trying to get lock");
            failed.end();
            crate::trace::AppendSpan::new(crate::trace::append_span([&receive], 1)).end();
            drop(receive);
        });
        telemetry.flush();
        let spans = collected.0.lock().unwrap();
        let receive = spans.iter().find(|s| s.name == "raw-sub receive").expect("the receive span");
        let inserts: Vec<&SpanData> = spans.iter().filter(|s| s.name == "INSERT event_store").collect();
        assert_eq!(inserts.len(), 2);
        for insert in &inserts {
            assert_eq!(insert.parent_span_id, opentelemetry::trace::SpanId::INVALID, "a root span");
            assert!(
                insert.links.iter().any(|l| l.span_context == receive.span_context),
                "linked to the receive span"
            );
            assert!(
                insert
                    .attributes
                    .iter()
                    .any(|a| a.key.as_str() == "db.system" && a.value.as_str() == "mysql")
            );
        }
        assert_eq!(inserts[0].status, Status::error("1213 Deadlock found when trying to get lock"));
        assert!(
            inserts[0]
                .attributes
                .iter()
                .any(|a| a.key.as_str() == "error.type" && a.value.as_str() == "database")
        );
        assert_eq!(inserts[1].status, Status::Unset, "an INSERT that succeeded");
        assert!(!inserts[1].attributes.iter().any(|a| a.key.as_str() == "error.type"));
    }
}
