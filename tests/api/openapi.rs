//! `GET /v1/openapi.json`: the description (openapi.yaml) is served, and it describes exactly the
//! routes the server answers, so a new route cannot ship undescribed (schemathesis, run by
//! tests/run, then checks every answer of every described route against it).

use crate::helpers::*;
use sealpost::http::Route;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// On AWS no function serves the description (API Gateway has API routes only; publish
/// openapi.yaml with your docs), so these tests are the embedded backend's.
async fn served_description(app: &TestApp) -> Value {
    let reply = call(app, "GET", "/v1/openapi.json", None, None).await;
    let ct = reply.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    reply.ok(200)
}

/// A concrete path for an OpenAPI/axum path pattern: every `{param}` becomes a well-formed
/// id that does not exist.
fn concrete(pattern: &str) -> String {
    pattern.replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA").replace("{doc}", "doc_AAAAAAAAAAAA")
}

/// The methods the server answers on `path` with anything but its "no such route" reply
/// (the one an unknown path gets). No key is sent, so nothing is changed.
async fn served_methods(app: &TestApp, path: &str) -> Vec<&'static str> {
    let no_route = call(app, "GET", "/v1/no-such-route", None, None).await;
    no_route.err(404, "not_found");
    let mut served = Vec::new();
    for method in METHODS {
        let reply = call(app, method, path, None, None).await;
        if (reply.status, &reply.json) != (no_route.status, &no_route.json) {
            served.push(method);
        }
    }
    served
}

#[tokio::test]
async fn the_description_is_served_as_openapi_3_1_without_a_key() {
    if !embedded() {
        return;
    }
    let app = TestApp::spawn().await;
    let spec = served_description(&app).await;
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", spec["openapi"]);
    assert!(spec["components"]["schemas"]["Error"].is_object());
    // Practice routes need the bearer key; the patient's do not.
    assert_eq!(spec["paths"]["/v1/shares"]["post"]["security"], json!([{"apiKey": []}]));
    assert_eq!(spec["paths"]["/v1/public/shares/{id}/verify"]["post"]["security"], json!([]));
}

#[tokio::test]
async fn every_route_the_server_answers_is_described() {
    if !embedded() {
        return;
    }
    let app = TestApp::spawn().await;
    let spec = served_description(&app).await;
    let paths = spec["paths"].as_object().expect("paths");
    for route in Route::ALL {
        let methods = served_methods(&app, &concrete(route.path())).await;
        assert!(!methods.is_empty(), "{route:?} ({}) answers no method", route.path());
        for method in methods {
            let operation = &spec["paths"][route.path()][method.to_lowercase()];
            assert!(
                operation["responses"].is_object(),
                "{method} {} ({route:?}) is served but not described in openapi.yaml; described: {:?}",
                route.path(),
                paths.keys().collect::<Vec<_>>()
            );
        }
    }
}

#[tokio::test]
async fn every_described_operation_is_served() {
    if !embedded() {
        return;
    }
    let app = TestApp::spawn().await;
    let spec = served_description(&app).await;
    let paths = spec["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let served = served_methods(&app, &concrete(path)).await;
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                assert!(served.contains(&method), "openapi.yaml describes {method} {path}, which the server does not answer");
            }
        }
    }
}
