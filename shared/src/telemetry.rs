//! Logs as JSON lines on stderr through `tracing` (stdout is the outbox's, on the embedded
//! backend). Fields are share ids and references; never codes, phone numbers, addresses or
//! document content — the domain types that hold those redact themselves in `Debug`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON subscriber; `RUST_LOG` overrides the default level (`info`) with a level
/// and `target=level` directives (`warn,sealpost=debug`). Not `EnvFilter`: its span and field
/// filters bring a regex engine, 0.3 MB in every Lambda binary, for nothing we use.
/// A value it cannot read (span or field filters are `EnvFilter`'s) leaves `info`, and says so.
pub fn init() {
    let asked = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let filter = asked.as_deref().and_then(filter_from);
    let unread = asked.is_some() && filter.is_none();
    let filter = filter.unwrap_or(Targets::new().with_default(LevelFilter::INFO));
    let installed = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .try_init();
    if unread && installed.is_ok() {
        tracing::warn!("RUST_LOG is not a level or target=level list; logging at info");
    }
}

/// `RUST_LOG`'s directives; `None` (the default level) for an empty or unreadable value.
/// `Targets` would read a span filter (`sealpost[verify]=debug`) as a target of that name, which
/// matches nothing and, with no default given, would silence every log: refused too.
fn filter_from(directives: &str) -> Option<Targets> {
    let directives = directives.trim();
    if directives.is_empty() || directives.contains(['[', ']', '{', '}']) {
        return None;
    }
    directives.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::filter_from;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_per_target() {
        let filter = filter_from("warn,sealpost=debug").expect("directives");
        assert!(filter.would_enable("sealpost::service", &Level::DEBUG));
        assert!(!filter.would_enable("sealpost::service", &Level::TRACE));
        assert!(!filter.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(filter.would_enable("aws_smithy_runtime", &Level::WARN));
        assert!(filter_from("").is_none());
        assert!(filter_from("sealpost=loud").is_none());
        assert!(filter_from("sealpost[verify]=debug").is_none());
        assert!(filter_from("sealpost[{share_id}]=debug,info").is_none());
    }
}
