//! `POST /v1/shares`: the happy path's shape, and every invalid input refused with the field
//! named, leaving nothing half-written.

use crate::helpers::*;

#[tokio::test]
async fn create_answers_the_documented_shape() {
    let app = TestApp::spawn().await;
    let reply = post_share(&app, &share_body()).await;
    assert!(reply.header("content-type").unwrap_or_default().starts_with("application/json"));
    let share = reply.ok(201);

    let id = id_of(&share);
    assert_eq!(id.len(), 22, "128-bit base64url id: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
    let reference = share["reference"].as_str().unwrap();
    assert!(reference.starts_with("SP-"), "{reference}");
    assert_eq!(share["link"].as_str().unwrap(), format!("{}/s/{id}", app.base_url));
    assert_eq!(share["status"], "active");
    assert_eq!(share["auth_method"], "sms");
    assert_eq!(time(&share["created_at"]), start_time());
    assert_eq!(time(&share["expires_at"]), start_time() + Duration::days(30));
    assert!(share.get("code").is_none(), "code only for manual: {share}");

    let docs = share["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1);
    assert!(docs[0]["id"].as_str().unwrap().starts_with("doc_"));
    assert_eq!(docs[0]["filename"], FILENAME);
    assert_eq!(docs[0]["content_type"], "application/pdf");
    assert_eq!(docs[0]["size"], PDF.len());
    assert_eq!(docs[0]["sha256"], sha256_hex(PDF));
    assert!(docs[0].get("upload_url").is_none(), "inline documents get no upload_url: {share}");

    assert_eq!(share["notifications"]["email"]["status"], "sent");
    assert_eq!(share["notifications"]["sms"]["status"], "sent");

    // Two ids differ.
    let other = create_share(&app, &share_body()).await;
    assert_ne!(id_of(&other), id);
    assert_ne!(other["reference"], share["reference"]);
}

#[tokio::test]
async fn defaults_and_bounds_of_expires_in_days() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    body.as_object_mut().unwrap().remove("expires_in_days");
    let share = create_share(&app, &body).await;
    assert_eq!(time(&share["expires_at"]), start_time() + Duration::days(30), "default 30 days");

    for days in [1, 7, 90] {
        let mut body = share_body();
        body["expires_in_days"] = json!(days);
        let share = create_share(&app, &body).await;
        assert_eq!(time(&share["expires_at"]), start_time() + Duration::days(days));
    }
    for days in [json!(0), json!(91), json!(-1), json!(1000)] {
        let mut body = share_body();
        body["expires_in_days"] = days.clone();
        post_share(&app, &body).await.invalid("expires_in_days");
    }
}

#[tokio::test]
async fn expires_in_days_respects_the_practice_maximum_and_default() {
    let app = TestApp::spawn_with(Policy { max_link_days: 10, default_link_days: 5, ..Policy::default() }).await;
    let mut body = share_body();
    body.as_object_mut().unwrap().remove("expires_in_days");
    let share = create_share(&app, &body).await;
    assert_eq!(time(&share["expires_at"]), start_time() + Duration::days(5), "the practice's default");

    body["expires_in_days"] = json!(10);
    create_share(&app, &body).await;
    body["expires_in_days"] = json!(11);
    post_share(&app, &body).await.invalid("expires_in_days");
}

#[tokio::test]
async fn a_practice_may_give_each_auth_method_its_own_link_days() {
    // appointmed's rule: 14 days for a date of birth (which a stranger may know), 90 for SMS.
    let mut policy = Policy::default();
    use sealpost::domain::AuthMethod;
    policy.link_days_by_method = [(AuthMethod::DateOfBirth, 14), (AuthMethod::Sms, 90)].into();
    let app = TestApp::spawn_with(policy).await;
    let expires = |method: &'static str, days: Option<u32>| {
        let app = &app;
        async move {
            let mut body = share_body_with_method(method);
            match days {
                Some(days) => body["expires_in_days"] = json!(days),
                None => drop(body.as_object_mut().unwrap().remove("expires_in_days")),
            }
            time(&create_share(app, &body).await["expires_at"])
        }
    };
    assert_eq!(expires("date_of_birth", None).await, start_time() + Duration::days(14));
    assert_eq!(expires("sms", None).await, start_time() + Duration::days(90));
    assert_eq!(expires("manual", None).await, start_time() + Duration::days(30), "the practice's default");
    assert_eq!(expires("date_of_birth", Some(60)).await, start_time() + Duration::days(60), "the share's own wins");
}

#[tokio::test]
async fn invalid_recipient_fields_are_named() {
    let app = TestApp::spawn().await;
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("recipient.phone", Box::new(|b| b["recipient"]["phone"] = json!("0791234567"))),
        ("recipient.phone", Box::new(|b| b["recipient"]["phone"] = json!("hello"))),
        ("recipient.phone", Box::new(|b| b["recipient"]["phone"] = json!("+41"))),
        ("recipient.phone", Box::new(|b| b["recipient"]["phone"] = json!("+99912345678"))),
        ("recipient.phone", Box::new(|b| b["recipient"]["phone"] = json!("+41441234567"))), // a landline
        ("recipient.phone", Box::new(|b| b["recipient"]["phone"] = json!("+41900123456"))), // premium-rate
        (
            "recipient.phone",
            Box::new(|b| {
                b["recipient"].as_object_mut().unwrap().remove("phone");
            }),
        ),
        ("recipient.email", Box::new(|b| b["recipient"]["email"] = json!("anna"))),
        ("recipient.email", Box::new(|b| b["recipient"]["email"] = json!("anna@"))),
        ("recipient.email", Box::new(|b| b["recipient"]["email"] = json!("Anna <anna@example.ch>"))),
        ("recipient.email", Box::new(|b| b["recipient"]["email"] = json!("anna@localhost"))),
        ("recipient.email", Box::new(|b| b["recipient"]["email"] = json!("jürg@example.ch"))),
        (
            "recipient.email",
            Box::new(|b| {
                b["recipient"].as_object_mut().unwrap().remove("email");
            }),
        ),
        ("recipient.language", Box::new(|b| b["recipient"]["language"] = json!("xx"))),
        ("recipient.language", Box::new(|b| b["recipient"]["language"] = json!("klingon"))),
        ("recipient.name", Box::new(|b| b["recipient"]["name"] = json!("a".repeat(201)))),
        ("recipient.name", Box::new(|b| b["recipient"]["name"] = json!("Anna\u{7}Muster"))),
        ("auth.method", Box::new(|b| b["auth"]["method"] = json!("carrier_pigeon"))),
    ];
    for (field, mutate) in cases {
        let mut body = share_body();
        mutate(&mut body);
        let reply = post_share(&app, &body).await;
        assert_eq!(reply.json["error"]["field"].as_str(), Some(field), "body {body}: {}", reply.text());
        reply.invalid(field);
    }
    assert_nothing_written(&app).await;
}

/// The code goes by SMS only to a number SMS can reach; a landline is still a phone number for
/// the methods that send no SMS.
#[tokio::test]
async fn a_landline_is_refused_for_sms_and_kept_for_other_methods() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    body["recipient"]["phone"] = json!("+41 44 123 45 67");
    let reply = post_share(&app, &body).await;
    let message = reply.invalid("recipient.phone")["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("landline"), "{message}");
    assert!(app.sent_sms().await.is_empty());

    body["auth"]["method"] = json!("manual");
    let share = create_share(&app, &body).await;
    assert!(app.sent_sms().await.is_empty(), "manual sends no SMS");
    assert_eq!(share["notifications"], json!({"email": {"status": "sent"}}), "{share}");
}

#[tokio::test]
async fn an_internationalised_domain_is_mailed_as_punycode() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    body["recipient"]["email"] = json!("anna@müller.ch");
    create_share(&app, &body).await;
    let sent = app.sent_emails().await;
    assert_eq!(sent.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(), ["anna@xn--mller-kva.ch"]);
}

#[tokio::test]
async fn accepted_recipient_variants() {
    let app = TestApp::spawn().await;
    for (lang, want) in [("de", "de"), ("fr", "fr"), ("it", "it"), ("en", "en"), ("de-CH", "de"), ("FR", "fr")] {
        let mut body = share_body();
        body["recipient"]["language"] = json!(lang);
        let share = create_share(&app, &body).await;
        assert_eq!(public_get(&app, &id_of(&share)).await.ok(200)["language"], want, "{lang}");
    }
    let mut body = share_body();
    body["recipient"]["name"] = json!("a".repeat(200));
    create_share(&app, &body).await;
    let mut body = share_body();
    body["recipient"].as_object_mut().unwrap().remove("name");
    body["recipient"].as_object_mut().unwrap().remove("language");
    body.as_object_mut().unwrap().remove("auth");
    body.as_object_mut().unwrap().remove("message");
    let share = create_share(&app, &body).await;
    assert_eq!(share["auth_method"], "sms", "sms is the default method");
    let public = public_get(&app, &id_of(&share)).await.ok(200);
    assert_eq!(public["language"], "de", "the practice's default language");
    assert_eq!(public["self_service"]["available"], true, "self_service defaults to true");
    assert_eq!(share["notifications"]["sms"]["status"], "sent");
    // A phone written with spaces is normalised.
    let mut body = share_body();
    body["recipient"]["phone"] = json!("+41 79 123 45 67");
    create_share(&app, &body).await;
    assert_eq!(app.sent_sms().await.last().unwrap().to, PHONE);
}

#[tokio::test]
async fn method_specific_secrets_are_required() {
    let app = TestApp::spawn().await;
    let mut body = share_body_with_method("date_of_birth");
    body["recipient"].as_object_mut().unwrap().remove("date_of_birth");
    post_share(&app, &body).await.invalid("recipient.date_of_birth");
    body["recipient"]["date_of_birth"] = json!("not a date");
    post_share(&app, &body).await.invalid("recipient.date_of_birth");

    let mut body = share_body_with_method("insurance_number");
    body["recipient"].as_object_mut().unwrap().remove("insurance_number");
    post_share(&app, &body).await.invalid("recipient.insurance_number");
    body["recipient"]["insurance_number"] = json!("!");
    post_share(&app, &body).await.invalid("recipient.insurance_number");
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn filenames_lose_path_parts_and_control_characters() {
    let app = TestApp::spawn().await;
    let cases = [
        ("C:\\Befunde\\Röntgen.pdf", "Röntgen.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/var/data/Befund.pdf", "Befund.pdf"),
        ("bad\u{0}name\r\n.pdf", "badname.pdf"),
        ("evil\u{202e}fdp.exe", "evilfdp.exe"),
    ];
    for (raw, want) in cases {
        let mut body = share_body();
        body["documents"] = json!([doc(raw, "application/pdf", PDF)]);
        let share = create_share(&app, &body).await;
        assert_eq!(share["documents"][0]["filename"], want, "{raw:?}");
        let view = get_share(&app, &id_of(&share)).await;
        assert_eq!(view["documents"][0]["filename"], want, "{raw:?}");
    }
    for bad in ["", "/", "..", "dir/", "\u{1}\u{2}"] {
        let mut body = share_body();
        body["documents"] = json!([doc(bad, "application/pdf", PDF)]);
        post_share(&app, &body).await.invalid("documents[0].filename");
    }
}

#[tokio::test]
async fn invalid_documents_are_named_by_index() {
    let app = TestApp::spawn().await;
    let good = doc("a.pdf", "application/pdf", PDF);

    let mut body = share_body();
    body["documents"] = json!([good.clone(), doc("b.pdf", "pdf", PDF)]);
    post_share(&app, &body).await.invalid("documents[1].content_type");
    body["documents"] = json!([doc("b.pdf", "*/*", PDF)]);
    post_share(&app, &body).await.invalid("documents[0].content_type");

    body["documents"] = json!([good.clone(), good.clone(), {"filename": "c.pdf", "content_type": "application/pdf", "content_base64": "!!! not base64 !!!"}]);
    post_share(&app, &body).await.invalid("documents[2].content_base64");

    body["documents"] = json!([]);
    post_share(&app, &body).await.invalid("documents");

    body.as_object_mut().unwrap().remove("documents");
    post_share(&app, &body).await.invalid("documents");

    let fifty_one: Vec<Value> = (0..51).map(|i| doc(&format!("d{i}.txt"), "text/plain", b"x")).collect();
    body["documents"] = json!(fifty_one);
    post_share(&app, &body).await.invalid("documents");

    assert_nothing_written(&app).await;

    let fifty: Vec<Value> = (0..50).map(|i| doc(&format!("d{i}.txt"), "text/plain", b"x")).collect();
    body["documents"] = json!(fifty);
    let share = create_share(&app, &body).await;
    assert_eq!(share["documents"].as_array().unwrap().len(), 50);
}

#[tokio::test]
async fn messages_are_bounded_and_never_code_shaped() {
    let app = TestApp::spawn().await;
    let spaced = ["123  456", "123 - 456", "12 34 56", "1 2 3 4 5 6", "Termin 12.03.25", "1\u{200b}23456"];
    for msg in ["Ihr Code: 123456", "123-456", "code 123 456 thanks", "x0123456789", "987.654", "Code: 123\u{2013}456"]
        .into_iter()
        .chain(spaced)
    {
        let mut body = share_body();
        body["message"] = json!(msg);
        post_share(&app, &body).await.invalid("message");
    }
    let mut body = share_body();
    body["message"] = json!("a".repeat(1001));
    post_share(&app, &body).await.invalid("message");
    assert_nothing_written(&app).await;

    for msg in ["a".repeat(1000), "Termin am 12.03.2025 um 14:30".to_owned(), "Rechnung 2024-001".to_owned()] {
        let mut body = share_body();
        body["message"] = json!(msg);
        create_share(&app, &body).await;
    }
}

#[tokio::test]
async fn a_body_over_36_mib_is_payload_too_large() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    // 37 MiB of base64 'A's (valid base64 of zero bytes).
    body["documents"] =
        json!([{"filename": "big.pdf", "content_type": "application/pdf", "content_base64": "A".repeat(37 * 1024 * 1024)}]);
    let reply = post_share(&app, &body).await;
    if embedded() {
        reply.err(413, "payload_too_large");
    } else {
        // Past Lambda's 6 MiB event, API Gateway answers by itself: Sealpost never sees it.
        assert_eq!(reply.status, 413, "{}", reply.text());
    }
    assert_nothing_written(&app).await;
}

/// What a create's inline documents may total here (docs/api.md): less on AWS, where the
/// request must fit Lambda's 6 MiB event.
fn inline_limit() -> usize {
    let limit = if embedded() { sealpost::service::MAX_INLINE_BYTES } else { sealpost::service::AWS_MAX_INLINE_BYTES };
    usize::try_from(limit).expect("fits")
}

#[tokio::test]
async fn inline_documents_up_to_the_limit_are_taken() {
    let app = TestApp::spawn().await;
    let half = vec![7u8; inline_limit() / 2];
    let mut body = share_body();
    body["documents"] = json!([doc("a.bin", "application/octet-stream", &half), doc("b.bin", "application/octet-stream", &half)]);
    let share = create_share(&app, &body).await;
    assert_eq!(share["documents"][1]["size"], half.len(), "{share}");
}

#[tokio::test]
async fn inline_documents_over_the_limit_are_refused_naming_documents() {
    let app = TestApp::spawn().await;
    // Each is fine alone, together they pass the limit (in a body under 36 MiB, or 6 MiB on AWS).
    let bytes = vec![7u8; inline_limit() / 2 + 1024];
    let mut body = share_body();
    body["documents"] =
        json!([doc("a.bin", "application/octet-stream", &bytes), doc("b.bin", "application/octet-stream", &bytes)]);
    let reply = post_share(&app, &body).await;
    let error = reply.invalid("documents");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("upload_url")), "{error}");
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn on_aws_a_body_past_lambdas_event_limit_never_reaches_sealpost() {
    if embedded() {
        return;
    }
    let app = TestApp::spawn().await;
    // 5 MiB inline: 6.7 MiB of base64, more than a Lambda event holds.
    let mut body = share_body();
    body["documents"] = json!([doc("a.bin", "application/octet-stream", &vec![7u8; 5 * 1024 * 1024])]);
    let reply = post_share(&app, &body).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(reply.json.get("message").is_some() && reply.json.get("error").is_none(), "API Gateway's answer: {}", reply.text());
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn non_json_and_wrong_types_are_400_json_errors() {
    let app = TestApp::spawn().await;
    let key = app.api_key.clone();
    for raw in ["hello", "{", "", "[]", "null", "42", "{\"recipient\": "] {
        let reply = call_raw(&app, "POST", "/v1/shares", Some(&key), Some("application/json"), raw.as_bytes().to_vec()).await;
        reply.err(400, "invalid_request");
    }
    let wrong_types = [
        json!({"recipient": "anna"}),
        json!({"recipient": {"email": 5, "phone": PHONE}, "documents": [doc("a.pdf", "application/pdf", PDF)]}),
        {
            let mut b = share_body();
            b["expires_in_days"] = json!("thirty");
            b
        },
        {
            let mut b = share_body();
            b["documents"] = json!("a.pdf");
            b
        },
        {
            let mut b = share_body();
            b["auth"] = json!("sms");
            b
        },
        {
            let mut b = share_body();
            b["documents"][0]["content_base64"] = json!(12);
            b
        },
        {
            let mut b = share_body();
            b["expires_in_days"] = json!(1.5);
            b
        },
    ];
    for body in wrong_types {
        let reply = post_share(&app, &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        reply.err(400, "invalid_request");
    }
    // Invalid UTF-8.
    let reply = call_raw(&app, "POST", "/v1/shares", Some(&key), Some("application/json"), vec![0xff, 0xfe, b'{']).await;
    reply.err(400, "invalid_request");
    // JSON without a JSON content type: a JSON 4xx, never a 5xx.
    let raw = serde_json::to_vec(&share_body()).unwrap();
    let reply = call_raw(&app, "POST", "/v1/shares", Some(&key), Some("text/plain"), raw.clone()).await;
    assert!(reply.status == 201 || (400..500).contains(&reply.status), "{}: {}", reply.status, reply.text());
    if reply.status != 201 {
        reply.client_error();
    }
}

#[tokio::test]
async fn a_refused_create_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    // Valid first document, invalid second: nothing of the first may be kept.
    let mut body = share_body();
    body["documents"] = json!([doc("ok.pdf", "application/pdf", PDF), doc("bad.pdf", "application/pdf", PDF)]);
    body["documents"][1]["content_base64"] = json!("%%%");
    post_share(&app, &body).await.invalid("documents[1].content_base64");
    let mut body = share_body();
    body["recipient"]["phone"] = json!("12");
    post_share(&app, &body).await.invalid("recipient.phone");
    assert_nothing_written(&app).await;
    // The blob folder holds no document bytes either.
    if !embedded() {
        return;
    }
    let left = files_containing(&app.data_dir, PDF);
    assert!(left.is_empty(), "document bytes left behind in {left:?}");
}

#[tokio::test]
async fn idempotency_key_must_be_visible_ascii_up_to_255() {
    let app = TestApp::spawn().await;
    post_share_idem(&app, &"k".repeat(256), &share_body()).await.invalid("Idempotency-Key");
    post_share_idem(&app, "", &share_body()).await.invalid("Idempotency-Key");
    assert_nothing_written(&app).await;
    post_share_idem(&app, &"k".repeat(255), &share_body()).await.ok(201);
}

/// No share listed, no SMS, no email.
pub async fn assert_nothing_written(app: &TestApp) {
    let list = list_shares(app, "").await.ok(200);
    assert_eq!(list["shares"], json!([]), "a refused create left a share: {list}");
    assert!(app.sent_sms().await.is_empty(), "a refused create sent an SMS");
    assert!(app.sent_emails().await.is_empty(), "a refused create sent an email");
}
