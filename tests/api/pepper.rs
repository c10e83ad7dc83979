//! On AWS the pepper is an SSM SecureString, read when a request first needs a key: a function
//! that never hashes a secret or checks a token never reads it, and a failed read fails only
//! the request that needed it.

use crate::helpers::*;
use base64::Engine;
use sealpost::error::Error;
use sealpost::ports::Uses;
use sealpost_tests::TestApp;
use std::collections::BTreeMap;
use std::sync::Arc;

#[tokio::test]
async fn the_pepper_is_read_from_ssm_when_a_request_first_needs_it() {
    let app = TestApp::spawn().await;
    let Some((clients, config)) = app.aws_parts() else { return };
    let id = id_of(&create_share(&app, &share_body()).await);
    let parameter = format!("/sealpost/tests/pepper-{}", hex::encode(sealpost::domain::random_bytes::<4>()));
    let config = sealpost::aws::AwsConfig::from_vars(|name| match name {
        "TABLE_NAME" => Some(config.table.clone()),
        "BUCKET_NAME" => Some(config.bucket.clone()),
        "PUBLIC_URL" => Some(config.public_url.clone()),
        "PEPPER_PARAMETER" => Some(parameter.clone()),
        _ => None,
    })
    .expect("config");
    // A function's service over the same table, its pepper in a parameter that does not exist yet.
    let service = sealpost::aws::build_service(&config, clients, Arc::new(app.clock.clone()), sealpost::ports::Uses::EVERYTHING);
    let id = sealpost::domain::ShareId::parse(&id).expect("a share id");
    service.public_share(&id).await.expect("the page's public info needs no key");
    let wrong: sealpost::service::VerifyIn = serde_json::from_str(r#"{"code":"000000"}"#).expect("an answer");
    let failed = service.verify(&id, &wrong).await.expect_err("no pepper yet");
    assert!(matches!(failed, Error::Internal(_)), "{failed:?}");

    let pepper = base64::engine::general_purpose::STANDARD.encode(sealpost::domain::random_bytes::<32>());
    clients
        .ssm()
        .put_parameter()
        .name(&parameter)
        .value(pepper)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("put the pepper");
    // The next request reads it; the answer is judged (wrong: this pepper is not the one the
    // share's code was hashed with).
    let judged = service.verify(&id, &wrong).await.expect_err("a wrong code");
    assert!(matches!(judged, Error::WrongCode { .. }), "{judged:?}");
}

/// Which functions' roles may read the pepper (template.yaml): exactly those built with keys
/// (`sealpost::lambda::function_uses`), which hash a secret, check an access token or sign a
/// webhook. The AWS suite runs every route function with only what it is built with, so a
/// route that needs keys cannot lose them unnoticed; the list is also written out here, so
/// moving a function in or out is a visible change.
#[test]
fn only_the_functions_that_need_the_pepper_may_read_it() {
    let (template, functions) = template_and_functions();
    let readers: Vec<&str> = functions
        .iter()
        .map(String::as_str)
        .filter(|name| sealpost_tests::gateway::has_policy(&template, name, "PepperReadPolicy"))
        .collect();
    let with_keys: Vec<&str> = functions.iter().map(String::as_str).filter(|name| uses(name).has(Uses::KEYS)).collect();
    assert_eq!(readers, with_keys, "PepperReadPolicy against the functions built with keys");
    assert_eq!(
        readers,
        [
            "archive-url",
            "create-share",
            "document-url",
            "reply",
            "request-code",
            "resend-share",
            "send-share",
            "send-worker",
            "verify-code",
            "webhook-sender",
            "webhooks"
        ]
    );
}

/// Only the functions built with an SMS sender may send SMS (SmsPolicy: SNS), and only those
/// built with an email sender may send email (EmailPolicy: SES): request-code, which anyone
/// can call, sends SMS only.
#[test]
fn only_the_functions_that_notify_may_send_sms_and_email() {
    let (template, functions) = template_and_functions();
    for name in &functions {
        let has = |policy| sealpost_tests::gateway::has_policy(&template, name, policy);
        assert_eq!(has("SmsPolicy"), uses(name).has(Uses::SMS), "{name}: SmsPolicy");
        assert_eq!(has("EmailPolicy"), uses(name).has(Uses::EMAIL), "{name}: EmailPolicy");
        assert!(!has("NotifyPolicy"), "{name}");
    }
}

/// Each function's S3 grants are exactly what the blob calls it is built with need, on real
/// S3 (moto does not check IAM, so only this catches a missing grant before a deployment does):
/// storing documents needs put, get (reading back, HEAD), abort (multipart) and delete (an
/// upload is moved into place by copy + delete); deleting a share's documents needs list and
/// delete; signing download links, get; signing upload links, put; a size, get (a HEAD is a GET)
/// and list. Listing is also what turns a GET of a missing key into a 404 rather than a 403.
#[test]
fn each_function_may_make_exactly_the_s3_calls_it_is_built_for() {
    let (template, functions) = template_and_functions();
    for name in &functions {
        let uses = uses(name);
        let mut needed: Vec<&str> = Vec::new();
        if uses.has(Uses::DOCUMENTS) {
            needed.extend(["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:ListBucket"]);
        }
        if uses.has(Uses::DOCUMENT_DELETION) {
            needed.extend(["s3:DeleteObject", "s3:ListBucket"]);
        }
        if uses.has(Uses::DOCUMENT_LINKS) {
            needed.push("s3:GetObject");
        }
        if uses.has(Uses::DOCUMENT_SIZES) {
            needed.extend(["s3:GetObject", "s3:ListBucket"]);
        }
        if uses.has(Uses::UPLOAD_LINKS) {
            needed.push("s3:PutObject");
        }
        if uses.has(Uses::BLOB_READS) {
            needed.extend(["s3:GetObject", "s3:ListBucket"]);
        }
        needed.sort_unstable();
        needed.dedup();
        assert_eq!(sealpost_tests::gateway::granted_actions(&template, name, "s3"), needed, "{name}");
    }
}

/// A HEAD of a missing key is a 404 only for a role that may list the bucket, without a prefix
/// condition (a HEAD names no prefix): else S3 answers 403, and "not uploaded" becomes a 500.
/// Every function that reads a size or a blob has such a grant.
#[test]
fn functions_that_read_sizes_or_blobs_may_list_without_a_condition() {
    let (template, functions) = template_and_functions();
    for name in &functions {
        if !uses(name).has_any(Uses::DOCUMENT_SIZES.and(Uses::BLOB_READS)) {
            continue;
        }
        let statements = sealpost_tests::gateway::function_statements(&template, name);
        let plain_list = statements
            .iter()
            .any(|s| s.effect == "Allow" && s.actions.iter().any(|a| a == "s3:ListBucket") && s.unmodelled.is_empty());
        assert!(plain_list, "{name}: s3:ListBucket without a condition");
    }
}

/// What each function may write to the table, by action and partition-key prefix
/// (`dynamodb:LeadingKeys`), read from the code: `shared/src/aws/dynamo.rs` and
/// `dynamo_webhooks.rs` say which key each store call writes, `shared/src/service/` which
/// calls each route makes. Written out here, where the test that holds template.yaml to it
/// is, because nothing at run time reads it (moto does not check IAM): a function that starts
/// to write another key fails only on AWS, so a change to this table is the reminder.
/// A share's transactions (the share and its events) are authorised item by item as PutItem
/// and UpdateItem on SHARE#. Every function not listed writes nothing.
const TABLE_WRITES: &[(&str, Writes)] = &[
    // Read receipts, answers counted, expiry recorded: the share and its events only.
    ("archive-url", &[("PutItem", &["SHARE#*"]), ("UpdateItem", &["SHARE#*"])]),
    ("document-url", &[("PutItem", &["SHARE#*"]), ("UpdateItem", &["SHARE#*"])]),
    ("public-share", &[("PutItem", &["SHARE#*"]), ("UpdateItem", &["SHARE#*"])]),
    ("verify-code", &[("PutItem", &["SHARE#*"]), ("UpdateItem", &["SHARE#*"])]),
    ("revoke-share", &[("PutItem", &["SHARE#*"]), ("UpdateItem", &["SHARE#*"])]),
    ("sweep", &[("PutItem", &["SHARE#*"]), ("UpdateItem", &["SHARE#*"])]),
    // A new share is put with its first event; the Idempotency-Key's claim is put, completed
    // or released; notifications add the provider's message id and count SMS.
    (
        "create-share",
        &[("DeleteItem", &["IDEMP#*"]), ("PutItem", &["IDEMP#*", "MSG#*", "SHARE#*"]), ("UpdateItem", &["IDEMP#*", "SMS#*"])],
    ),
    // The share changed, and notified: message ids, the SMS day counter (taken, given back).
    ("request-code", &[("PutItem", &["MSG#*", "SHARE#*"]), ("UpdateItem", &["SHARE#*", "SMS#*"])]),
    ("resend-share", &[("PutItem", &["MSG#*", "SHARE#*"]), ("UpdateItem", &["SHARE#*", "SMS#*"])]),
    ("send-share", &[("UpdateItem", &["SHARE#*"])]),
    ("upload-url", &[("UpdateItem", &["SHARE#*"])]),
    // A reply counted on its share, then marked submitted with its event.
    ("reply", &[("PutItem", &["SHARE#*"]), ("UpdateItem", &["SHARE#*"])]),
    ("send-worker", &[("PutItem", &["MSG#*", "SHARE#*"]), ("UpdateItem", &["SHARE#*", "SMS#*"])]),
    // A provider's report becomes an event of its share.
    ("feedback", &[("PutItem", &["SHARE#*"])]),
    // Endpoints and their health items sit in the practice's partition.
    ("webhooks", &[("DeleteItem", &["PRACTICE#*"]), ("PutItem", &["PRACTICE#*"]), ("UpdateItem", &["PRACTICE#*"])]),
    ("webhook-sender", &[("PutItem", &["WHFAIL#*"]), ("UpdateItem", &["PRACTICE#*"])]),
];

/// Each function's table grants beyond reading (GetItem, Query) are exactly the writes
/// [`TABLE_WRITES`] declares for it, each limited by `dynamodb:LeadingKeys`: no function anyone
/// can call may write an API key or a practice, and none may delete what it does not own. This
/// reads template.yaml; it does not run it (moto does not check IAM).
#[test]
fn each_function_may_write_only_the_table_keys_it_is_declared_to() {
    let (template, functions) = template_and_functions();
    for (name, _) in TABLE_WRITES {
        assert!(functions.iter().any(|f| f == name), "TABLE_WRITES names {name}, which is no function");
    }
    for name in &functions {
        let mut granted: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for statement in sealpost_tests::gateway::function_statements(&template, name) {
            let table: Vec<&String> = statement.actions.iter().filter(|a| a.starts_with("dynamodb:")).collect();
            if table.is_empty() || statement.effect != "Allow" {
                continue;
            }
            assert!(statement.unmodelled.is_empty(), "{name}: a table statement this test cannot read: {statement:?}");
            for action in table {
                let action = action.trim_start_matches("dynamodb:");
                if matches!(action, "GetItem" | "Query") {
                    continue;
                }
                // Without the condition (or with another operator) a write reaches every key.
                let prefixes = match &statement.leading_keys {
                    Some((operator, prefixes)) if operator == "ForAllValues:StringLike" => prefixes.clone(),
                    _ => vec!["any key".to_owned()],
                };
                granted.entry(action.to_owned()).or_default().extend(prefixes);
            }
        }
        for prefixes in granted.values_mut() {
            prefixes.sort();
            prefixes.dedup();
        }
        let declared: BTreeMap<String, Vec<String>> = TABLE_WRITES
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, writes)| writes.iter().map(|(a, p)| (a.to_string(), p.iter().map(|p| p.to_string()).collect())).collect())
            .unwrap_or_default();
        assert_eq!(granted, declared, "{name}: table writes granted in template.yaml against TABLE_WRITES");
    }
}

/// SMS go to phone numbers, which IAM can only allow on `*`; topics and platform endpoints have
/// ARNs, and every function that may publish is denied all of them (the stack's own SES feedback topic
/// would otherwise take forged bounces from any function that sends SMS).
#[test]
fn the_functions_that_send_sms_may_not_publish_to_topics() {
    let (template, functions) = template_and_functions();
    for name in &functions {
        let statements = sealpost_tests::gateway::function_statements(&template, name);
        let publish = |effect: &str| {
            statements
                .iter()
                .filter(|s| s.effect == effect && s.actions.iter().any(|a| a == "sns:Publish"))
                .flat_map(|s| s.resources.clone())
                .collect::<Vec<_>>()
        };
        if publish("Allow").is_empty() {
            assert!(!uses(name).has(Uses::SMS), "{name} sends SMS");
            continue;
        }
        assert_eq!(publish("Allow"), ["'*'"], "{name}: SMS are published on *");
        assert_eq!(publish("Deny"), ["!Sub 'arn:${AWS::Partition}:sns:*:*:*'"], "{name}: no topic or endpoint");
    }
}

/// One function's table writes: each action with the partition-key patterns it may write.
type Writes = &'static [(&'static str, &'static [&'static str])];

fn uses(function: &str) -> Uses {
    sealpost::lambda::function_uses(function).unwrap_or_else(|| panic!("{function} is no function"))
}

fn template_and_functions() -> (String, Vec<String>) {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let mut functions: Vec<String> = sealpost::lambda::function_names().into_iter().map(String::from).collect();
    functions.sort();
    (template, functions)
}

/// Only the functions built with the send queue may queue sends, and only to it: the queue's
/// messages start the worker's work on a share, which nothing else may trigger. The worker may
/// postpone its own retries, nothing more.
#[test]
fn only_the_functions_that_queue_sends_may_send_to_the_send_queue() {
    let (template, functions) = template_and_functions();
    for name in &functions {
        let sqs: Vec<(Vec<String>, Vec<String>)> = sealpost_tests::gateway::function_statements(&template, name)
            .into_iter()
            .filter(|s| s.effect == "Allow" && s.actions.iter().any(|a| a.starts_with("sqs:")))
            .map(|s| (s.actions, s.resources))
            .filter(|(actions, resources)| {
                actions.iter().any(|a| a == "sqs:SendMessage" || a == "sqs:*")
                    || resources.iter().any(|r| r.contains("SendQueue"))
            })
            .collect();
        let on_queue = |action: &str| vec![(vec![action.to_owned()], vec!["!GetAtt SendQueue.Arn".to_owned()])];
        let expected = match name.as_str() {
            _ if uses(name).has(Uses::SENDS) => on_queue("sqs:SendMessage"),
            "send-worker" => on_queue("sqs:ChangeMessageVisibility"),
            // The webhook fan-out queues deliveries on its own queue.
            "webhook-fanout" => sqs.iter().filter(|(_, r)| !r.iter().any(|r| r.contains("SendQueue"))).cloned().collect(),
            _ => vec![],
        };
        assert_eq!(sqs, expected, "{name}");
    }
}
