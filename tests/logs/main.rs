//! What the logs hold when an operator turns them all the way up: a share's whole life at
//! `RUST_LOG=trace`, on the backend the suite runs against (embedded, or the AWS adapters on
//! moto, where the SDK would log every request it sends), and not one of the patient's data in
//! a line. Its own test binary: the subscriber it installs is the process's.

#[allow(unused_imports)] // the API suite's helpers, of which this test needs a few
#[path = "../api/helpers.rs"]
mod helpers;

use helpers::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every log line written so far, shared with the subscriber's writer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_the_patient_reaches_the_logs_even_at_trace() {
    let logs = Captured::default();
    let writer = logs.clone();
    sealpost::telemetry::install(Some("trace".to_owned()), move || writer.clone());
    let app = TestApp::spawn().await;

    let phone = "+41 79 555 12 34";
    let email = "hanna.beispiel@example.ch";
    let name = "Hanna Beispiel";
    let filename = "Befund Hanna Beispiel.txt";
    let content = "Diagnose 7f3a9c: nur fuer die Patientin";
    let body = json!({
        "recipient": {"email": email, "phone": phone, "name": name, "language": "de"},
        "auth": {"method": "sms", "self_service": true},
        "documents": [doc(filename, "text/plain", content.as_bytes())]
    });
    let share = create_share(&app, &body).await;
    let id = id_of(&share);
    let doc_id = share["documents"][0]["id"].as_str().expect("document id").to_owned();
    let first_code = code_in(&app.sent_sms().await.last().expect("an SMS").body).expect("a code");

    resend(&app, &id).await.ok(200);
    let code = code_in(&app.sent_sms().await.last().expect("an SMS").body).expect("a code");
    verify(&app, &id, &first_code).await.err(401, "wrong_code");
    let verified = verify_ok(&app, &id, &code).await;
    let token = token_of(&verified);
    let link = document_link(&app, &id, &doc_id, Some(&token)).await.ok(200);
    let url = link["url"].as_str().expect("url").to_owned();
    assert_eq!(fetch_url(&app, &url).await.bytes, content.as_bytes());
    archive_link(&app, &id, Some(&token)).await.ok(200);
    get_share(&app, &id).await;

    let logged = logs.text();
    assert!(logged.contains(&id), "the share's own lines are there to read: {} bytes", logged.len());
    let mut personal = vec![
        ("the phone number", "795551234".to_owned()),
        ("the email address", email.to_owned()),
        ("the patient's name", "Beispiel".to_owned()),
        ("the document's name", filename.to_owned()),
        ("the document's content", "7f3a9c".to_owned()),
        ("the access token", token.clone()),
        ("the API key", app.api_key.clone()),
    ];
    // A code as a field's value, or quoted inside a logged body: six bare digits could be a
    // timestamp's microseconds.
    for c in [&first_code, &code] {
        personal.push(("a code", format!("\"{c}\"")));
        personal.push(("a code", format!("\\\"{c}\\\"")));
    }
    for (what, value) in personal {
        if let Some(at) = logged.find(&value) {
            let line = logged[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = logged[at..].find('\n').map_or(logged.len(), |i| at + i);
            panic!("{what} is in the logs: {}", &logged[line..end]);
        }
    }
}
