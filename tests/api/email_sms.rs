//! What the patient receives and what an anonymous caller can learn: emails carry no health data
//! and never a code; SMS carry the reference and the code; the public page names no document;
//! unknown ids and routes give a minimal JSON 404.

use crate::helpers::*;

#[tokio::test]
async fn the_email_has_name_reference_link_and_message_but_no_document_or_code() {
    let app = TestApp::spawn().await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);
    let reference = share["reference"].as_str().unwrap();
    let link = share["link"].as_str().unwrap();
    let practice = public_get(&app, &id).await.ok(200)["practice_name"].as_str().expect("practice_name").to_owned();
    assert!(!practice.is_empty());

    let emails = app.sent_emails().await;
    assert_eq!(emails.len(), 1);
    let email = &emails[0];
    assert_eq!(email.to, EMAIL);
    let all = format!("{}\n{}", email.subject, email.body);
    assert!(all.contains(&practice), "practice name: {all}");
    assert!(all.contains(reference), "reference: {all}");
    assert!(email.body.contains(link), "link: {}", email.body);
    assert!(email.body.contains(MESSAGE), "the practice's message: {}", email.body);
    assert!(!all.contains(FILENAME) && !all.contains("Rechnung-2024"), "no document names in email: {all}");
    assert!(!all.contains(&code) && !all.contains(&dashed(&code)), "never the code in email: {all}");
    assert!(!all.contains(PHONE), "no phone number in email: {all}");

    let sms = app.sent_sms().await;
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].to, PHONE);
    assert!(sms[0].body.contains(reference), "reference in SMS: {}", sms[0].body);
    assert!(!sms[0].body.contains(FILENAME), "{}", sms[0].body);
    assert_eq!(code_in(&sms[0].body).as_deref(), Some(code.as_str()));
}

#[tokio::test]
async fn the_outbox_lines_carry_the_share_id() {
    if !embedded() {
        return; // `/_outbox` is the embedded backend's
    }
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let outbox = call(&app, "GET", "/_outbox", None, None).await.ok(200);
    let messages = outbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    for m in messages {
        assert_eq!(m["share_id"], share["id"]);
        assert!(m["channel"] == "sms" || m["channel"] == "email");
        time(&m["sent_at"]);
    }
}

#[tokio::test]
async fn every_language_gets_an_email_and_an_sms() {
    let app = TestApp::spawn().await;
    let mut bodies = Vec::new();
    for lang in ["de", "fr", "it", "en"] {
        let mut body = share_body();
        body["recipient"]["language"] = json!(lang);
        let share = create_share(&app, &body).await;
        assert_eq!(public_get(&app, &id_of(&share)).await.ok(200)["language"], lang);
        let email = app.sent_emails().await.pop().unwrap();
        assert!(email.body.contains(share["reference"].as_str().unwrap()));
        let code = last_code(&app).await;
        assert!(!email.body.contains(&code));
        // Mask the share-specific parts to compare the texts themselves.
        let text =
            email.body.replace(share["reference"].as_str().unwrap(), "REF").replace(share["link"].as_str().unwrap(), "LINK");
        bodies.push(text);
    }
    let distinct: std::collections::HashSet<&String> = bodies.iter().collect();
    assert_eq!(distinct.len(), 4, "each language has its own email text");
}

#[tokio::test]
async fn the_public_view_names_no_document_and_masks_the_phone() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    let r = public_get(&app, &id).await;
    let text = r.text();
    let public = r.ok(200);
    assert!(!text.contains(FILENAME) && !text.contains("Rechnung"), "no document names: {text}");
    assert!(!text.contains(PHONE) && !text.contains("791234"), "phone masked: {text}");
    assert!(!text.contains(EMAIL) && !text.contains("Anna"), "no personal data: {text}");
    assert!(!text.contains(MESSAGE), "{text}");
    assert!(public.get("documents").is_none(), "{text}");
    assert_eq!(public["id"], id.as_str());
    assert_eq!(public["reference"], share["reference"]);
    assert_eq!(public["auth_method"], "sms");
    assert_eq!(public["language"], "de");
    assert_eq!(public["state"], "active");
    assert_eq!(public["attempts_left"], 5);
    assert_eq!(time(&public["expires_at"]), time(&share["expires_at"]));
    let masked = public["masked_phone"].as_str().expect("masked_phone for sms");
    assert!(masked.starts_with("+41") && masked.ends_with("67"), "{masked}");
    assert_eq!(public["self_service"]["available"], true);
    assert!(public["practice_name"].as_str().is_some_and(|n| !n.is_empty()));
}

#[tokio::test]
async fn unknown_and_garbage_share_ids_get_only_a_404() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let real = id_of(&share);
    // Same length as a real id, one character off.
    let mut near = real.clone().into_bytes();
    near[0] = if near[0] == b'A' { b'B' } else { b'A' };
    let near = String::from_utf8(near).unwrap();
    let ids = [
        "AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        near,
        "x".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "%00".to_owned(),
        "a".repeat(300),
        "SP-AAAA-BBBB".to_owned(),
        format!("{real}A"),
    ];
    for id in &ids {
        for (method, path, body) in [
            ("GET", format!("/v1/public/shares/{id}"), None),
            ("POST", format!("/v1/public/shares/{id}/verify"), Some(json!({"code": "123456"}))),
            ("POST", format!("/v1/public/shares/{id}/code"), None),
            ("GET", format!("/v1/public/shares/{id}/archive"), None),
            ("GET", format!("/v1/public/shares/{id}/documents/doc_AAAAAAAAAAAA"), None),
        ] {
            let r = call(&app, method, &path, None, body.as_ref()).await;
            if r.status == 401 && (path.contains("/archive") || path.contains("/documents/")) {
                // Without a token these may be refused before the id is looked up.
                r.err(401, "unauthorized");
                r.only_error();
                continue;
            }
            assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
            r.err(404, "not_found");
            r.only_error();
        }
        get_share_reply(&app, id).await.err(404, "not_found");
    }
    // Nothing of the real share was touched.
    let view = get_share(&app, &real).await;
    assert_eq!(view["attempts_left"], 5);
    assert_eq!(count_events(&view, "opened"), 0);
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        ("GET", "/v1/nope"),
        ("GET", "/nope"),
        ("POST", "/v1/shares/AAAAAAAAAAAAAAAAAAAAAA/explode"),
        ("GET", "/v1/public/shares"),
        ("GET", "/v2/shares"),
    ] {
        let r = call(&app, method, path, Some(&app.api_key), None).await;
        r.err(404, "not_found");
    }
}

#[tokio::test]
async fn errors_never_leak_internals() {
    let app = TestApp::spawn().await;
    let r =
        call_raw(&app, "POST", "/v1/shares", Some(&app.api_key.clone()), Some("application/json"), b"{\"recipient\": [".to_vec())
            .await;
    r.err(400, "invalid_request");
    let msg = r.json["error"]["message"].as_str().unwrap();
    for leak in ["serde", "rusqlite", "panicked", "/src/", "sqlite"] {
        assert!(!msg.to_lowercase().contains(leak), "internal detail in {msg}");
    }
}
