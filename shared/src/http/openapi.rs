//! `GET /v1/openapi.json`: the API's description, `openapi.yaml` at the top of the repository.
//!
//! The YAML is the one source (it is what people edit and review); it is embedded in the binary
//! and turned into JSON once, on the first request, so the two can never disagree. No auth: the
//! description holds nothing a caller could not learn from the docs.

use crate::error::Error;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::LazyLock;

pub const PATH: &str = "/v1/openapi.json";

const OPENAPI_YAML: &str = include_str!("../../../openapi.yaml");

/// The JSON text, or why the embedded YAML could not be read (a unit test keeps that from
/// ever shipping).
static OPENAPI_JSON: LazyLock<Result<String, String>> = LazyLock::new(|| spec().map(|value| value.to_string()));

/// The embedded description as a JSON value.
pub fn spec() -> Result<serde_json::Value, String> {
    serde_saphyr::from_str::<serde_json::Value>(OPENAPI_YAML).map_err(|e| format!("openapi.yaml: {e}"))
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(PATH, get(openapi_json))
}

async fn openapi_json() -> Response {
    match &*OPENAPI_JSON {
        Ok(json) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json.clone()).into_response(),
        Err(detail) => Error::Internal(detail.clone()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn doc() -> Value {
        spec().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_yaml_reads_as_openapi_3_1_with_yaml_1_2_scalars() {
        let d = doc();
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(d["info"]["version"], "0.1.0", "a version stays a string");
        // Quoted 'null' is the JSON Schema type name, not a null; numbers stay numbers.
        assert_eq!(d["components"]["schemas"]["NullableTimestamp"]["type"], serde_json::json!(["string", "null"]));
        assert_eq!(d["components"]["schemas"]["LargeDocument"]["properties"]["size"]["maximum"], 2_147_483_648u64);
        // Status codes are keys as strings.
        assert!(d["paths"]["/v1/shares"]["post"]["responses"]["201"].is_object());
        let example = &d["paths"]["/v1/shares"]["post"]["requestBody"]["content"]["application/json"]["examples"];
        assert_eq!(example["date_of_birth"]["value"]["recipient"]["date_of_birth"], "1980-02-29");
    }

    #[test]
    fn every_ref_points_at_something() {
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|x| refs(x, out));
                }
                Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let d = doc();
        let mut found = Vec::new();
        refs(&d, &mut found);
        assert!(found.len() > 20, "the description uses components");
        for r in found {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not a local reference"));
            assert!(d.pointer(pointer).is_some(), "{r} points at nothing");
        }
    }

    #[tokio::test]
    async fn served_as_json() {
        let response = openapi_json().await;
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let served: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(served, doc());
    }
}
