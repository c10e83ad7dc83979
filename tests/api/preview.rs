//! `POST /v1/shares/preview`: the email and SMS create would send, exactly, with placeholders
//! for what only a created share has; the same errors as create; nothing stored, sent or
//! counted.

use crate::helpers::*;

async fn preview(app: &TestApp, key: &str, body: &Value) -> Reply {
    call(app, "POST", "/v1/shares/preview", Some(key), Some(body)).await
}

/// `text` with the preview's placeholders replaced by a created share's values.
fn filled(text: &str, preview: &Value, share: &Value, code: Option<&str>) -> String {
    let placeholders = &preview["placeholders"];
    let mut text = text
        .replace(placeholders["link"].as_str().unwrap(), share["link"].as_str().unwrap())
        .replace(placeholders["reference"].as_str().unwrap(), share["reference"].as_str().unwrap());
    if let Some(code) = code {
        text = text.replace(placeholders["code"].as_str().unwrap(), code);
    }
    text
}

#[tokio::test]
async fn a_preview_is_what_create_then_sends() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    let shown = preview(&app, &app.api_key, &body).await.ok(200);
    assert_eq!(app.sent_emails().await.len() + app.sent_sms().await.len(), 0, "a preview sends nothing");
    assert_eq!(shown["placeholders"]["reference"], "SP-XXXX-XXXX", "{shown}");
    assert_eq!(shown["placeholders"]["code"], "XXXXXX", "{shown}");
    assert_eq!(shown["auth_method"], "sms");
    // Each placeholder can be replaced on its own: none holds another.
    let link = shown["placeholders"]["link"].as_str().unwrap();
    assert!(!link.contains("XXXXXX") && !link.contains("SP-XXXX-XXXX"), "{link}");

    let (share, code) = {
        let share = create_share(&app, &body).await;
        let code = last_code(&app).await;
        (share, code)
    };
    assert_eq!(shown["expires_at"], share["expires_at"], "the same link validity");
    let email = &app.sent_emails().await[0];
    assert_eq!(email.to, shown["email"]["to"]);
    assert_eq!(email.subject, filled(shown["email"]["subject"].as_str().unwrap(), &shown, &share, None));
    // The embedded outbox keeps the plain-text part, moto the HTML part.
    let part = if embedded() { "text" } else { "html" };
    assert_eq!(email.body, filled(shown["email"][part].as_str().unwrap(), &shown, &share, None));
    assert!(shown["email"]["text"].as_str().unwrap().contains(MESSAGE), "{shown}");
    let sms = &app.sent_sms().await[0];
    assert_eq!(sms.to, shown["sms"]["to"]);
    assert_eq!(sms.body, filled(shown["sms"]["text"].as_str().unwrap(), &shown, &share, Some(&code)));
    assert_eq!(shown["sms"]["encoding"], "GSM-7");
    assert_eq!(shown["sms"]["segments"], 1);

    // Documents may be left out; another language, another text.
    body.as_object_mut().unwrap().remove("documents");
    body["recipient"]["language"] = json!("fr");
    let french = preview(&app, &app.api_key, &body).await.ok(200);
    assert!(french["sms"]["text"].as_str().unwrap().contains("votre code"), "{french}");
    assert_ne!(french["email"]["subject"], shown["email"]["subject"]);
}

#[tokio::test]
async fn a_preview_stores_sends_and_counts_nothing() {
    let app = TestApp::spawn().await;
    let key = app.add_practice("Praxis Eins", Policy { daily_sms_cap: 1, ..Policy::default() }).await;
    for _ in 0..3 {
        preview(&app, &key, &share_body()).await.ok(200);
    }
    let list = call(&app, "GET", "/v1/shares", Some(&key), None).await.ok(200);
    assert_eq!(list["shares"], json!([]), "no share: {list}");
    assert!(app.sent_emails().await.is_empty() && app.sent_sms().await.is_empty());
    // The day's one SMS is still there for a real share.
    let share = post_share_with_key(&app, &key, &share_body()).await.ok(201);
    assert_eq!(share["notifications"]["sms"]["status"], "sent", "{share}");
}

#[tokio::test]
async fn only_an_sms_code_has_an_sms_and_its_encoding_follows_the_text() {
    let app = TestApp::spawn().await;
    for method in ["manual", "date_of_birth", "insurance_number"] {
        let shown = preview(&app, &app.api_key, &share_body_with_method(method)).await.ok(200);
        assert_eq!(shown["sms"], Value::Null, "{method}: {shown}");
        assert_eq!(shown["auth_method"], method);
        assert!(shown["placeholders"].get("code").is_none(), "{method}: {shown}");
    }
    // A name outside GSM-7 makes the SMS UCS-2, 70 characters a segment.
    let key = app.add_practice("Praxis Dr. Doğan & Partner", Policy::default()).await;
    let shown = preview(&app, &key, &share_body()).await.ok(200);
    assert_eq!(shown["sms"]["encoding"], "UCS-2", "{shown}");
    let units = shown["sms"]["text"].as_str().unwrap().encode_utf16().count();
    assert!(units > 70, "two segments at least: {units}");
    assert_eq!(shown["sms"]["segments"], units.div_ceil(67), "{shown}");
}

#[tokio::test]
async fn a_preview_is_refused_as_create_would_be() {
    let app = TestApp::spawn().await;
    let mut coded = share_body();
    coded["message"] = json!("Ihr Code: 123 456");
    preview(&app, &app.api_key, &coded).await.invalid("message");
    post_share(&app, &coded).await.invalid("message");

    let mut no_phone = share_body();
    no_phone["recipient"].as_object_mut().unwrap().remove("phone");
    preview(&app, &app.api_key, &no_phone).await.invalid("recipient.phone");

    let mut bad_doc = share_body();
    bad_doc["documents"] = json!([doc("../", "application/pdf", PDF)]);
    preview(&app, &app.api_key, &bad_doc).await.invalid("documents[0].filename");
    bad_doc["documents"] = json!([]);
    preview(&app, &app.api_key, &bad_doc).await.invalid("documents");

    let mut long = share_body();
    long["expires_in_days"] = json!(91);
    preview(&app, &app.api_key, &long).await.invalid("expires_in_days");

    preview(&app, "sp_live_not-a-key", &share_body()).await.err(401, "unauthorized");
    assert!(app.sent_emails().await.is_empty());
}
