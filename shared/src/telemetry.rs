//! Logs as JSON lines on stderr through `tracing` (stdout is the outbox's, on the embedded
//! backend). Fields are share ids and references; never codes, phone numbers, addresses or
//! document content — the domain types that hold those redact themselves in `Debug`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON subscriber; `RUST_LOG` overrides the default level (`info`) with a level
/// and `target=level` directives (`warn,sealpost=debug`). Not `EnvFilter`: its span and field
/// filters bring a regex engine for nothing we use.
/// A value it cannot read (span or field filters are `EnvFilter`'s) leaves `info`, and says so.
pub fn init() {
    install(std::env::var("RUST_LOG").ok(), std::io::stderr);
}

/// [`init`] with the directives and the writer given: what a test reads back (tests/logs).
pub fn install<W>(rust_log: Option<String>, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let asked = rust_log.filter(|v| !v.trim().is_empty());
    let filter = asked.as_deref().and_then(filter_from);
    let unread = asked.is_some() && filter.is_none();
    let filter = filter.unwrap_or(Targets::new().with_default(LevelFilter::INFO));
    let installed = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_max_level(LevelFilter::TRACE)
        .with_writer(writer)
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
    directives.parse().ok().map(trace_only_ours)
}

/// Other crates log what passes through them at TRACE: the AWS SDK every request and response
/// it sends (an SNS message with its code and phone number, a DynamoDB item, an email), the
/// phone number library the numbers it parses. No directive turns that on: TRACE stays ours
/// (targets starting `sealpost`, as `Targets` matches: no other crate in the tree does), every
/// other target is held at DEBUG at most. `trace` alone still traces ours.
fn trace_only_ours(asked: Targets) -> Targets {
    const OURS: &str = "sealpost";
    let held = |level: LevelFilter| level.min(LevelFilter::DEBUG);
    let default = asked.default_level();
    let names_ours = asked.iter().any(|(target, _)| target == OURS);
    let mut filter = Targets::new();
    if let Some(level) = default {
        filter = filter.with_default(held(level));
        if !names_ours {
            filter = filter.with_target(OURS, level);
        }
    }
    for (target, level) in asked {
        let ours = target.starts_with(OURS);
        filter = filter.with_target(target, if ours { level } else { held(level) });
    }
    filter
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

    #[test]
    fn only_our_own_code_logs_at_trace() {
        let sdk = "aws_smithy_runtime::client::orchestrator";
        let phones = "rlibphonenumber::phonenumberutil::phonenumberutil_internal";
        for directives in ["trace", "trace,sealpost=trace", "aws_smithy_runtime=trace,rlibphonenumber=trace,sealpost=trace"] {
            let filter = filter_from(directives).expect("directives");
            assert!(filter.would_enable("sealpost::service::verify", &Level::TRACE), "{directives}");
            assert!(!filter.would_enable(sdk, &Level::TRACE), "{directives}");
            assert!(!filter.would_enable(phones, &Level::TRACE), "{directives}");
            assert!(filter.would_enable(sdk, &Level::DEBUG), "{directives}");
        }
        let filter = filter_from("info,sealpost::aws=trace").expect("directives");
        assert!(filter.would_enable("sealpost::aws::s3", &Level::TRACE));
        assert!(!filter.would_enable("sealpost::service", &Level::DEBUG));
        assert!(!filter.would_enable(sdk, &Level::DEBUG));
        let filter = filter_from("debug,sealpost=warn").expect("directives");
        assert!(!filter.would_enable("sealpost::service", &Level::INFO));
        assert!(filter.would_enable(sdk, &Level::DEBUG));
    }
}
