//! Architecture invariants that are cheap to check (ARCHITECTURE.md lists them).

use std::path::Path;

fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

fn shared_src(sub: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src").join(sub)
}

#[test]
fn the_domain_knows_no_http_sql_or_aws() {
    let forbidden = ["axum", "http::", "rusqlite", "aws_", "lambda_", "tokio", "crate::ports", "crate::http", "crate::embedded"];
    let files = sources(&shared_src("domain"));
    assert!(files.len() >= 5, "domain sources found");
    for (path, text) in files {
        for word in forbidden {
            assert!(!text.contains(word), "{path} mentions {word}: the domain must stay pure");
        }
    }
}

#[test]
fn the_service_knows_no_http_framework_or_storage_engine() {
    for (path, text) in sources(&shared_src("service")) {
        for word in ["axum", "rusqlite", "aws_", "crate::embedded", "crate::http"] {
            assert!(!text.contains(word), "{path} mentions {word}: use cases run over ports only");
        }
    }
}

#[test]
fn no_log_line_names_personal_data() {
    // Log fields that would carry a code, a phone number, an address or a document's content.
    let suspicious = ["phone =", "email =", "code =", "to =", "body =", "filename =", "%phone", "%email", "?recipient"];
    for (path, text) in sources(&shared_src("")) {
        for line in text.lines().filter(|l| l.contains("tracing::")) {
            for s in suspicious {
                assert!(!line.contains(s), "{path}: log line with {s}: {line}");
            }
        }
    }
}
