//! Logs as JSON lines on stderr through `tracing` (stdout is the outbox's, on the embedded
//! backend). Fields are share ids and references; never codes, phone numbers, addresses or
//! document content — the domain types that hold those redact themselves in `Debug`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber; `RUST_LOG` overrides the default level (`info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
