//! `send` answers at once (`202`, `sending`) and leaves the uploads' check, the archive and the
//! notification to the backend's worker (docs/api.md). What the worker must guarantee: the
//! patient hears nothing before the archive exists, the archive holds every byte, and the work
//! is done once however often it runs, across a restart, alongside a revoke.

use crate::helpers::*;

/// `len` bytes that do not compress (so the archive really holds them), different per `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A share of `docs` to upload: created, each uploaded through its URL; its id.
async fn uploaded_share(app: &TestApp, docs: &[(&str, &[u8])]) -> (String, Value) {
    let mut body = share_body();
    body["documents"] =
        Value::Array(docs.iter().map(|(name, bytes)| large_doc(name, "application/octet-stream", bytes)).collect());
    let share = create_share(app, &body).await;
    for (i, (_, bytes)) in docs.iter().enumerate() {
        let put = put_url(app, share["documents"][i]["upload_url"].as_str().expect("upload_url"), bytes).await;
        assert!((200..300).contains(&put.status), "upload {i}: {} {}", put.status, put.text());
    }
    (id_of(&share), share)
}

#[tokio::test]
async fn a_large_share_is_sent_in_the_background_and_archived_byte_for_byte() {
    // Three documents, 210 MiB in all: more than a request may take on AWS.
    let app = TestApp::spawn().await;
    let docs = [noise(70 << 20, 1), noise(70 << 20, 2), noise((70 << 20) + 13, 3)];
    let (id, _) = uploaded_share(&app, &[("eins.bin", &docs[0]), ("zwei.bin", &docs[1]), ("drei.bin", &docs[2])]).await;

    let sent = send(&app, &id).await.ok(202);
    assert_eq!(sent["status"], "sending");
    assert!(app.sent_sms().await.is_empty() && app.sent_emails().await.is_empty(), "nobody hears before the archive exists");
    public_get(&app, &id).await.err(404, "not_found");

    assert_eq!(app.process_sends().await, 1);
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(event_types(&view), ["created", "archive_ready", "email_sent", "sms_sent"]);
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(app.sent_emails().await.len(), 1);

    let token = token_of(&verify_ok(&app, &id, &last_code(&app).await).await);
    let entries = downloaded_archive(&app, &id, &token).await;
    assert_eq!(entries.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["eins.bin", "zwei.bin", "drei.bin"]);
    for ((_, got), expected) in entries.iter().zip(&docs) {
        assert!(got == expected, "every byte, in order");
    }
}

#[tokio::test]
async fn a_send_worked_twice_at_once_notifies_once() {
    // A redelivered queue message, or two workers: both may build the archive, one activates.
    let app = TestApp::spawn().await;
    let bytes = noise(300_000, 4);
    let (id, _) = uploaded_share(&app, &[("scan.bin", &bytes)]).await;
    send(&app, &id).await.ok(202);
    let share = sealpost::domain::ShareId::parse(&id).unwrap();
    let (a, b) = tokio::join!(app.service.finish_send(&share), app.service.finish_send(&share));
    a.expect("first run");
    b.expect("second run");
    app.process_sends().await; // the queued message: nothing left to do
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(count_events(&view, "archive_ready"), 1);
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(app.sent_emails().await.len(), 1);
    let token = token_of(&verify_ok(&app, &id, &last_code(&app).await).await);
    assert!(downloaded_archive(&app, &id, &token).await[0].1 == bytes);
}

#[tokio::test]
async fn a_send_queued_before_a_restart_is_done_after_it() {
    let app = TestApp::spawn().await;
    let bytes = noise(300_000, 5);
    let (id, _) = uploaded_share(&app, &[("scan.bin", &bytes)]).await;
    send(&app, &id).await.ok(202);
    let app = app.restart().await;
    assert_eq!(get_share(&app, &id).await["status"], "sending");
    assert_eq!(app.process_sends().await, 1, "the queued work survived the restart");
    assert_eq!(get_share(&app, &id).await["status"], "active");
    assert_eq!(app.sent_sms().await.len(), 1);
}

#[tokio::test]
async fn a_share_revoked_while_sending_keeps_nothing_and_notifies_nobody() {
    let app = TestApp::spawn().await;
    let bytes = noise(300_000, 6);
    let (id, share) = uploaded_share(&app, &[("scan.bin", &bytes)]).await;
    send(&app, &id).await.ok(202);
    revoke(&app, &id).await.ok(200);
    assert_eq!(app.process_sends().await, 1, "the queued send is worked, and finds the share revoked");
    assert_eq!(get_share(&app, &id).await["status"], "revoked");
    assert!(app.sent_sms().await.is_empty() && app.sent_emails().await.is_empty());
    let doc = share["documents"][0]["id"].as_str().unwrap();
    for key in ["archive.zip".to_owned(), doc.to_owned(), format!("uploads/{doc}")] {
        let found = app.service.blobs.size(&format!("shares/{id}/{key}")).await.expect("size");
        assert_eq!(found, None, "{key}");
    }
}

#[tokio::test]
async fn an_expired_share_is_not_sent() {
    let app = TestApp::spawn().await;
    let bytes = noise(300_000, 7);
    let mut body = share_body();
    body["expires_in_days"] = json!(1);
    body["documents"] = json!([large_doc("scan.bin", "application/octet-stream", &bytes)]);
    let share = create_share(&app, &body).await;
    let id = id_of(&share);
    put_url(&app, share["documents"][0]["upload_url"].as_str().unwrap(), &bytes).await;
    send(&app, &id).await.ok(202);
    app.advance(Duration::days(2));
    app.process_sends().await;
    assert_eq!(get_share(&app, &id).await["status"], "expired");
    assert!(app.sent_sms().await.is_empty());
    send(&app, &id).await.err(410, "expired");
}

#[tokio::test]
async fn a_send_lost_from_the_queue_is_queued_again_by_the_sweep() {
    let app = TestApp::spawn().await;
    let bytes = noise(300_000, 8);
    let (id, _) = uploaded_share(&app, &[("scan.bin", &bytes)]).await;
    send(&app, &id).await.ok(202);
    let lost = app.lose_queued_sends().await;
    // Not yet: a worker may still be on it.
    app.advance(Duration::minutes(29));
    app.sweep().await;
    if lost {
        assert_eq!(app.process_sends().await, 0, "nothing queued again before 30 minutes");
        assert_eq!(get_share(&app, &id).await["status"], "sending");
    }
    app.advance(Duration::minutes(2));
    app.sweep().await;
    assert!(app.process_sends().await >= 1, "queued again by the sweep");
    assert_eq!(get_share(&app, &id).await["status"], "active");
    assert_eq!(app.sent_sms().await.len(), 1, "one notification, however often it was queued");
    // A sent share is due for nothing but its expiry.
    app.advance(Duration::minutes(31));
    assert_eq!(app.sweep().await, 0);
    assert_eq!(app.process_sends().await, 0);
}

#[tokio::test]
async fn the_sweep_queues_a_send_again_three_times_at_most() {
    let app = TestApp::spawn().await;
    let bytes = noise(300_000, 9);
    let (id, _) = uploaded_share(&app, &[("scan.bin", &bytes)]).await;
    send(&app, &id).await.ok(202);
    let mut queued = Vec::new();
    for _ in 0..5 {
        app.lose_queued_sends().await;
        app.advance(Duration::minutes(31));
        app.sweep().await;
        queued.push(get_share(&app, &id).await["status"] == "sending");
    }
    assert!(queued.iter().all(|sending| *sending), "never worked here: still sending");
    // Three times queued again, then left to the operator (the dead-letter alarm, the log).
    let share = app.service.store.get_share(&sealpost::domain::ShareId::parse(&id).unwrap()).await.unwrap().unwrap();
    assert_eq!(share.send_requeues, 3);
    // Whatever is still queued is worked: the share is sent.
    app.process_sends().await;
    if !app.lose_queued_sends().await {
        assert_eq!(get_share(&app, &id).await["status"], "active");
    }
}

/// A sender that panics: the worker's process ending while it notifies the patient.
struct ProcessEnds;

#[async_trait::async_trait]
impl sealpost::ports::MailSender for ProcessEnds {
    async fn send_mail(&self, _: &sealpost::ports::Mail) -> sealpost::ports::PortResult<sealpost::ports::Sent> {
        panic!("the worker's process ends here");
    }
}

#[async_trait::async_trait]
impl sealpost::ports::SmsSender for ProcessEnds {
    async fn send_sms(&self, _: &sealpost::ports::Sms) -> sealpost::ports::PortResult<sealpost::ports::Sent> {
        panic!("the worker's process ends here");
    }
}

/// A worker run on `id` whose process ends as it starts to notify: the share is active, and
/// nobody was told.
async fn run_ending_before_the_notification(app: &TestApp, id: &str) {
    run_ending_at(app, id, false).await
}

/// The app's service with other senders: a worker whose notifying goes otherwise.
fn with_senders(
    app: &TestApp,
    sms: std::sync::Arc<dyn sealpost::ports::SmsSender>,
    mail: std::sync::Arc<dyn sealpost::ports::MailSender>,
) -> sealpost::service::Service {
    sealpost::service::Service { sms, mail, ..(*app.service).clone() }
}

/// … or ends between the email and the SMS (`at_sms`).
async fn run_ending_at(app: &TestApp, id: &str, at_sms: bool) {
    let ends = std::sync::Arc::new(ProcessEnds);
    let ending = match at_sms {
        true => with_senders(app, ends, app.service.mail.clone()),
        false => with_senders(app, app.service.sms.clone(), ends),
    };
    let id = sealpost::domain::ShareId::parse(id).unwrap();
    let run = tokio::spawn(async move { ending.finish_send(&id).await });
    assert!(run.await.expect_err("the run ends").is_panic());
}

#[tokio::test]
async fn a_share_activated_by_a_run_that_ended_before_notifying_is_notified_by_the_next() {
    // The queue's next delivery (or the sweep's, below) notifies, with a new SMS code: the
    // one made at activation never left the ended run.
    let app = TestApp::spawn().await;
    let (id, _) = uploaded_share(&app, &[("scan.bin", &noise(300_000, 10))]).await;
    send(&app, &id).await.ok(202);
    run_ending_before_the_notification(&app, &id).await;
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(event_types(&view), ["created", "archive_ready"], "nobody told");
    assert!(app.sent_sms().await.is_empty() && app.sent_emails().await.is_empty());

    assert!(app.process_sends().await >= 1, "the queued message, delivered again");
    assert_eq!((app.sent_sms().await.len(), app.sent_emails().await.len()), (1, 1));
    verify_ok(&app, &id, &last_code(&app).await).await;
    let share = sealpost::domain::ShareId::parse(&id).unwrap();
    app.service.finish_send(&share).await.expect("a later delivery");
    assert_eq!((app.sent_sms().await.len(), app.sent_emails().await.len()), (1, 1), "and then done");

    // A run that ended after notifying, before it could say so on the share: the events
    // show it, and nobody is told twice (a second SMS would kill the first code).
    let mut stored = app.store().get_share(&share).await.unwrap().unwrap();
    stored.notify_pending_since = Some(app.service.now());
    stored.version += 1;
    app.store().update_share(&stored, &[]).await.unwrap();
    app.service.finish_send(&share).await.expect("a later delivery");
    assert_eq!((app.sent_sms().await.len(), app.sent_emails().await.len()), (1, 1));
    assert!(app.store().get_share(&share).await.unwrap().unwrap().notify_pending_since.is_none());
}

#[tokio::test]
async fn a_run_that_ended_between_the_email_and_the_sms_leaves_only_the_sms_to_send() {
    // The email (and its event) went out, the code never did: the next run sends a code by SMS,
    // not a second email.
    let app = TestApp::spawn().await;
    let (id, _) = uploaded_share(&app, &[("scan.bin", &noise(300_000, 13))]).await;
    send(&app, &id).await.ok(202);
    run_ending_at(&app, &id, true).await;
    assert_eq!((app.sent_sms().await.len(), app.sent_emails().await.len()), (0, 1));
    app.process_sends().await;
    assert_eq!((app.sent_sms().await.len(), app.sent_emails().await.len()), (1, 1), "the code, and only it");
    verify_ok(&app, &id, &last_code(&app).await).await;
}

#[tokio::test]
async fn a_practice_that_resends_after_such_a_run_is_not_doubled_and_the_sweep_makes_good_a_lost_message() {
    let app = TestApp::spawn().await;
    // The practice sees an active share with no email_sent and resends: its code stands.
    let (resent, _) = uploaded_share(&app, &[("scan.bin", &noise(300_000, 11))]).await;
    send(&app, &resent).await.ok(202);
    run_ending_before_the_notification(&app, &resent).await;
    resend(&app, &resent).await.ok(200);
    let code = last_code(&app).await;
    app.process_sends().await;
    assert_eq!((app.sent_sms().await.len(), app.sent_emails().await.len()), (1, 1), "the resend's notice only");
    verify_ok(&app, &resent, &code).await;

    // The message lost too: the sweep queues the share again, 30 minutes after activation.
    let (lost, _) = uploaded_share(&app, &[("scan.bin", &noise(300_000, 12))]).await;
    send(&app, &lost).await.ok(202);
    run_ending_before_the_notification(&app, &lost).await;
    app.lose_queued_sends().await;
    app.advance(Duration::minutes(31));
    app.sweep().await;
    assert!(app.process_sends().await >= 1, "queued again by the sweep");
    assert_eq!((app.sent_sms().await.len(), app.sent_emails().await.len()), (2, 2));
    let view = get_share(&app, &lost).await;
    assert_eq!(count_events(&view, "archive_ready"), 1);
    assert_eq!(count_events(&view, "email_sent"), 1);
}

/// The app's mail, through which the practice resends the share once, as its email goes out.
struct ResendMeanwhile {
    service: std::sync::Arc<sealpost::service::Service>,
    resent: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl sealpost::ports::MailSender for ResendMeanwhile {
    async fn send_mail(&self, mail: &sealpost::ports::Mail) -> sealpost::ports::PortResult<sealpost::ports::Sent> {
        if !self.resent.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let share = self.service.store.get_share(&mail.share_id).await?.expect("share");
            let practice = self.service.store.get_practice(&share.practice_id).await?.expect("practice");
            self.service.resend(&practice, &share.id).await.expect("resent");
        }
        self.service.mail.send_mail(mail).await
    }
}

#[tokio::test]
async fn a_resend_while_the_worker_tells_the_patient_is_the_code_that_counts() {
    // The practice resends just as the worker's email goes out: the worker's SMS would carry a
    // code the resend already replaced, and arrive last. It is not sent.
    let app = TestApp::spawn().await;
    let (id, _) = uploaded_share(&app, &[("scan.bin", &noise(300_000, 14))]).await;
    send(&app, &id).await.ok(202);
    let resends = ResendMeanwhile { service: app.service.clone(), resent: Default::default() };
    let worker = with_senders(&app, app.service.sms.clone(), std::sync::Arc::new(resends));
    worker.finish_send(&sealpost::domain::ShareId::parse(&id).unwrap()).await.expect("run");
    assert_eq!(app.sent_sms().await.len(), 1, "the resend's code only");
    verify_ok(&app, &id, &last_code(&app).await).await;
}
