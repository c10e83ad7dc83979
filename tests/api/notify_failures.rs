//! A provider that fails never loses a share: the answer says which channel failed, the
//! practice sees `notification_failed` with the channel, and the share stays open, so a resend
//! (once the provider is back) reaches the patient.

use crate::helpers::*;
use sealpost_tests::TestApp;

#[tokio::test]
async fn failed_sms_and_email_are_reported_and_the_share_is_kept() {
    let app = TestApp::spawn_with_failing_notifications().await;
    let created = create_share(&app, &share_body()).await;
    let id = id_of(&created);
    for channel in ["email", "sms"] {
        assert_eq!(created["notifications"][channel]["status"], "failed", "{created}");
        assert_eq!(created["notifications"][channel]["error"], "provider_error", "{created}");
    }
    assert_eq!(created["status"], "active");

    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(count_events(&view, "notification_failed"), 2, "{view}");
    assert_eq!(count_events(&view, "sms_sent") + count_events(&view, "email_sent"), 0);
    let channels: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "notification_failed")
        .filter_map(|e| e["data"]["channel"].as_str())
        .collect();
    assert!(channels.contains(&"email") && channels.contains(&"sms"), "{channels:?}");

    // Still there, still open to the patient, and a resend reports the failure again.
    public_get(&app, &id).await.ok(200);
    let resent = resend(&app, &id).await.ok(200);
    assert_eq!(resent["notifications"]["sms"]["status"], "failed", "{resent}");
    assert_eq!(count_events(&get_share(&app, &id).await, "notification_failed"), 4);
}
