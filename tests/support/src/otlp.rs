//! The receiving end of a real OTLP exporter for the suites: `tests/otlp-receiver.py`, an
//! OTLP/HTTP listener decoding with the OpenTelemetry protobuf definitions, one JSON span a line
//! (name, service, kind, trace_id, span_id, parent_span_id, links, attributes).

use crate::{required_env, unique};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The OTLP receiver: a Python process appending every span it decodes to a file.
pub struct Receiver {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    out: PathBuf,
    grpc: bool,
}

impl Receiver {
    /// An OTLP/HTTP (protobuf) receiver.
    pub fn start() -> Receiver {
        Receiver::serving(false)
    }

    /// An OTLP/gRPC receiver.
    pub fn start_grpc() -> Receiver {
        Receiver::serving(true)
    }

    fn serving(grpc: bool) -> Receiver {
        let python = required_env("SUITEX_TEST_PYTHON");
        let out = std::env::temp_dir().join(format!("suitex-spans-{}.jsonl", unique()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../otlp-receiver.py");
        let mut cmd = Command::new(python);
        cmd.arg(script).arg(&out);
        if grpc {
            cmd.arg("--grpc");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver (scripts/services start installs its Python packages)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.trim().parse().unwrap_or_else(|_| panic!("the OTLP receiver did not start: {line:?}"));
        Receiver { child, port, out, grpc }
    }

    /// The `OTEL_*` settings that export to this receiver, quickly.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ];
        if self.grpc {
            env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()));
        }
        env
    }

    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON span a line"))
            .collect()
    }

    /// Waits until a span named `name` arrived from `service`.
    pub async fn span(&self, service: &str, name: &str) -> Value {
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if let Some(hit) = spans.iter().find(|s| s["service"] == service && s["name"] == name) {
                return hit.clone();
            }
            if tokio::time::Instant::now() > until {
                let seen: Vec<String> =
                    spans.iter().map(|s| format!("{} / {}", s["service"], s["name"])).collect();
                panic!("{service} exported no {name:?} span within 30 s; received: {seen:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}
