//! Verifies a code N times through the real router over the embedded store, for
//! `bench/callgrind.py` (BENCHMARKS.md): run under callgrind with two values of N, the
//! difference of the instruction totals divided by the difference of N is the cost of one
//! verify — parsing, the SQLite read and conditional write, the HMACs, the JSON answer —
//! without the set-up (pepper, schema, the share's creation) that both runs share.
//!
//! `verify <data-dir> <n>`: a fresh data dir, one `manual` share with one small PDF, then `n`
//! right answers to `POST /v1/public/shares/{id}/verify`, one after the other.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use sealpost::embedded::{Options, build};
use sealpost::ports::SystemClock;
use std::sync::Arc;
use tower::ServiceExt;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

async fn call(router: &axum::Router, request: Request<Body>) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes)?))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [data_dir, n] = args.as_slice() else {
        anyhow::bail!("usage: verify <data-dir> <n>");
    };
    let n: u32 = n.parse()?;
    // One thread: callgrind serialises threads anyway, and the count stays the same per run.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let options = Options {
            data_dir: data_dir.into(),
            public_url: "http://127.0.0.1:8080".into(),
            api_key: None,
            quiet: true,
            outbox_route: false,
        };
        let app = build(options, Arc::new(SystemClock)).await?;
        let body = serde_json::json!({
            "recipient": {"email": "anna@example.ch", "language": "de"},
            "auth": {"method": "manual"},
            "documents": [{"filename": "Befund.pdf", "content_type": "application/pdf",
                           "content_base64": base64::engine::general_purpose::STANDARD.encode(PDF)}],
        });
        let create = Request::post("/v1/shares")
            .header("authorization", format!("Bearer {}", app.api_key))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))?;
        let (status, share) = call(&app.router, create).await?;
        anyhow::ensure!(status == StatusCode::CREATED, "create: {status} {share}");
        let id = share["id"].as_str().unwrap_or_default().to_owned();
        let answer = serde_json::json!({ "code": share["code"] }).to_string();
        for _ in 0..n {
            let verify = Request::post(format!("/v1/public/shares/{id}/verify"))
                .header("content-type", "application/json")
                .body(Body::from(answer.clone()))?;
            let (status, view) = call(&app.router, verify).await?;
            anyhow::ensure!(status == StatusCode::OK, "verify: {status} {view}");
        }
        println!("{n} verifies of share {id}");
        Ok(())
    })
}
