//! Every file in `events/` runs through its function's handler, so the sample events (for
//! `infra/invoke`, or `sam local invoke` where Docker exists) never rot: an
//! API Gateway HTTP API (payload 2.0) event must reach its route's handler, not the fallback,
//! and the stream and schedule events must do their work.

use crate::helpers::*;
use sealpost::http::{Route, route_router};
use sealpost_tests::TestApp;
use std::path::{Path, PathBuf};
use tower::ServiceExt;

/// The API key in the practice events (`events/create-share.json` and its siblings).
const EVENT_KEY: &str = "sp_live_EventsExampleKeyDoNotUseInProduction0000000";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read_event(name: &str) -> String {
    std::fs::read_to_string(events_dir().join(format!("{name}.json"))).unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
}

/// Runs an API event through the one-route router its function mounts.
async fn invoke(app: &TestApp, route: Route) -> (u16, serde_json::Value) {
    let request = lambda_http::request::from_str(&read_event(route.function_name()))
        .unwrap_or_else(|e| panic!("events/{}.json is not an HTTP API event: {e}", route.function_name()));
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, sealpost::http::Body::from(body.to_vec()));
    let response =
        route_router(&Route::of_function(route.function_name()), app.service.clone()).oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn every_file_in_events_belongs_to_a_function() {
    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_owned())
        .collect();
    names.sort();
    let mut expected: Vec<&str> = sealpost::lambda::function_names();
    expected.sort();
    assert_eq!(names, expected, "one event per function, named after it");
}

/// template.yaml deploys the one binary once per function, each named by its `Handler`: the
/// handlers must be exactly those the binary serves (`sealpost::lambda::serve_handler`), all
/// built from the same code (one build for all in `sam build`).
#[test]
fn the_template_deploys_each_function_the_binary_serves() {
    let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
    let mut deployed = sealpost_tests::gateway::template_functions(&template);
    deployed.sort();
    let mut served: Vec<String> = sealpost::lambda::function_names().into_iter().map(String::from).collect();
    served.sort();
    let handlers: Vec<String> = deployed.iter().map(|f| f.handler.clone()).collect();
    assert_eq!(handlers, served);
    for function in &deployed {
        assert_eq!(function.binary, "sealpost-lambda", "{}: BuildProperties.Binary", function.handler);
        assert_eq!(function.code_uri, "lambda", "{}: CodeUri", function.handler);
    }
}

/// A route is declared once, in `sealpost::http::Route`; template.yaml's HTTP API must route each
/// route key to the function declared for it, and nothing else (besides `$default`).
#[test]
fn the_template_routes_each_route_to_its_declared_function() {
    let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
    let mut wired = sealpost_tests::gateway::template_routes(&template);
    let mut declared: Vec<(String, String)> =
        Route::ALL.iter().map(|r| (format!("{} {}", r.method(), r.path()), r.function_name().to_owned())).collect();
    declared.push(("$default".into(), sealpost_tests::gateway::DEFAULT_ROUTE_FUNCTION.into()));
    wired.sort();
    declared.sort();
    assert_eq!(wired, declared);
}

#[tokio::test]
async fn each_api_event_reaches_its_handler() {
    let app = TestApp::spawn().await;
    app.add_api_key(EVENT_KEY).await;
    let mut functions: Vec<Route> = Vec::new();
    for route in Route::ALL {
        if !functions.iter().any(|f| f.function_name() == route.function_name()) {
            functions.push(route);
        }
    }
    for route in functions {
        let (status, body) = invoke(&app, route).await;
        let name = route.function_name();
        // A 404 from the fallback would mean the event does not match the function's route.
        assert_ne!(body["error"]["message"], "no such route: check the method and the path", "{name}: {body}");
        let expected: &[u16] = match route {
            Route::CreateShare => &[201],
            Route::ListShares => &[200],
            Route::PreviewShare => &[200],
            // `webhooks` serves every webhook route; its event lists the endpoints.
            Route::CreateWebhook => &[200],
            // The events name a share that does not exist here: the handler answers so.
            _ => &[404],
        };
        assert!(expected.contains(&status), "{name}: {status} {body}");
        if status == 404 {
            assert_eq!(body["error"]["code"], "not_found", "{name}");
        }
    }
    // The created share is real: listed, with its SMS sent.
    let list = invoke(&app, Route::ListShares).await.1;
    assert_eq!(list["shares"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(app.sent_sms().await.len(), 1);
}

#[tokio::test]
async fn the_cleanup_event_deletes_the_removed_share_s_objects() {
    let app = TestApp::spawn().await;
    let event: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(&read_event("cleanup")).expect("a stream event");
    let id = sealpost::aws::stream::removed_share_id(&event.records[0]).expect("the first record is a TTL removal of a share");
    let blobs = app.service.blobs.clone();
    blobs.put(&format!("shares/{id}/doc_a"), b"a").await.unwrap();
    blobs.put(&format!("shares/{id}/archive.zip"), b"zip").await.unwrap();
    blobs.put("shares/someoneelse0000000000/doc_b", b"b").await.unwrap();

    let response = sealpost::lambda::cleanup_removed_shares(blobs.as_ref(), &event.records).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(blobs.open(&format!("shares/{id}/doc_a")).await.unwrap().is_none());
    assert!(blobs.open(&format!("shares/{id}/archive.zip")).await.unwrap().is_none());
    assert!(blobs.open("shares/someoneelse0000000000/doc_b").await.unwrap().is_some(), "other shares untouched");
    // The second record removes an event item, not a share: nothing of its own to delete.
    assert_eq!(sealpost::aws::stream::removed_share_id(&event.records[1]), None);
}

#[tokio::test]
async fn removals_not_made_by_ttl_are_ignored() {
    let mut event: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(&read_event("cleanup")).unwrap();
    let record = &mut event.records[0];
    record.user_identity = None; // a delete by the application, not by TTL
    assert_eq!(sealpost::aws::stream::removed_share_id(record), None);
    record.event_name = "MODIFY".into();
    assert_eq!(sealpost::aws::stream::removed_share_id(record), None);
}

#[tokio::test]
async fn the_sweep_event_is_a_scheduler_event() {
    let event: serde_json::Value = serde_json::from_str(&read_event("sweep")).unwrap();
    assert_eq!(event["source"], "aws.scheduler");
    // What the sweep function does with it is the expiry sweep, tested in expiry.rs.
    let _ = share_body();
}

#[tokio::test]
async fn the_fanout_event_carries_new_events() {
    let event: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(&read_event("webhook-fanout")).unwrap();
    let inserted = sealpost::aws::stream::new_event(&event.records[0]).expect("an event");
    assert_eq!((inserted.id.as_str(), inserted.share_id.as_str()), ("evt_Q2xZk9dWm3VtR8pL4nYc0A", "q3Zt0d8YwV1mKb6Xr2NcAa"));
    let mut update = event.records[0].clone();
    update.event_name = "MODIFY".into();
    assert_eq!(sealpost::aws::stream::new_event(&update), None, "an update is not a new event");
}

#[tokio::test]
async fn the_sender_event_carries_a_delivery() {
    let event: sealpost::lambda::SqsEvent = serde_json::from_str(&read_event("webhook-sender")).unwrap();
    let messages = sealpost::lambda::queued_messages(event);
    let message = &messages[0];
    assert_eq!((message.receive_count, message.message_id.as_str()), (1, "059f36b4-87a3-44ab-83d2-661975830a7d"));
    let delivery: sealpost::service::Delivery = serde_json::from_str(&message.body).unwrap();
    assert_eq!(message.group_id, format!("{}:{}", delivery.webhook_id, delivery.share_id));
    let payload: serde_json::Value = serde_json::from_str(&delivery.body).unwrap();
    assert_eq!(payload["id"], delivery.event_id.as_str());
    // Its endpoint does not exist here: the delivery is dropped, not retried.
    let app = TestApp::spawn().await;
    assert_eq!(app.service.deliver(&delivery, 0).await, sealpost::service::Delivered::Dropped);
}

#[tokio::test]
async fn the_send_worker_event_names_a_share() {
    let event: sealpost::lambda::SqsEvent = serde_json::from_str(&read_event("send-worker")).unwrap();
    let messages = sealpost::lambda::queued_messages(event);
    let message = &messages[0];
    assert!(sealpost::domain::ShareId::parse(&message.body).is_some(), "the body is a share id: {}", message.body);
    assert_eq!(message.group_id, message.body, "one group per share");
    // No such share here: the message is done, not retried.
    let app = TestApp::spawn().await;
    assert_eq!(sealpost::lambda::work_sends(&app.service, &messages).await, Vec::<String>::new());
}

#[tokio::test]
async fn the_feedback_event_is_an_ses_bounce_through_sns() {
    let app = TestApp::spawn().await;
    let event: serde_json::Value = serde_json::from_str(&read_event("feedback")).unwrap();
    let (id, report) = sealpost::feedback::ses_report(&event["Records"][0]["Sns"]["Message"]).expect("a bounce");
    assert_eq!(id, "0107019b2d7e4f1a-5c1e9f0d-3a7b-4c2e-9d8f-1a2b3c4d5e6f-000000");
    assert_eq!(report.data["bounce_type"], "Permanent");
    // Not one of this app's messages: read, and nothing recorded.
    assert_eq!(sealpost::feedback::handle(&app.service, &event).await.unwrap(), 0);
}

/// The functions build their SDK clients from Lambda's environment alone (no aws-config
/// loader): region, the role's keys and `AWS_ENDPOINT_URL`, here moto's.
#[tokio::test]
async fn clients_from_lambda_environment_reach_the_services() {
    use sealpost::aws::Clients;
    let lambda_env = |endpoint: Option<String>| {
        move |name: &str| match name {
            "AWS_REGION" => Some(sealpost_tests::REGION.to_owned()),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" => Some("test".to_owned()),
            "AWS_ENDPOINT_URL" => endpoint.clone(),
            _ => None,
        }
    };
    let missing = Clients::from_lambda_vars(|name| (name != "AWS_SECRET_ACCESS_KEY").then(|| "x".to_owned()));
    assert_eq!(missing.err().map(|e| e.to_string()).as_deref(), Some("AWS_SECRET_ACCESS_KEY is not set"));
    if !sealpost_tests::aws_backend() {
        return;
    }
    let moto = std::env::var("SEALPOST_TEST_MOTO_URL").expect("SEALPOST_TEST_MOTO_URL");
    let clients = Clients::from_lambda_vars(lambda_env(Some(moto))).expect("clients");
    let name = format!("sealpost-lambda-env-{}", hex::encode(sealpost::domain::random_bytes::<4>()));
    sealpost::aws::provision::create_table(&clients, &name).await.expect("DynamoDB through the Lambda clients");
    sealpost::aws::provision::create_bucket(&clients, &name, sealpost_tests::REGION).await.expect("S3, by path");
    let table = clients.dynamodb().describe_table().table_name(&name).send().await.expect("describe");
    assert_eq!(table.table().and_then(|t| t.table_name()), Some(name.as_str()));
}
