//! The practice API's bearer keys, and one practice never seeing another's shares.

use crate::helpers::*;

#[tokio::test]
async fn practice_routes_need_a_valid_key() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    let routes = [
        ("POST", "/v1/shares".to_owned()),
        ("GET", "/v1/shares".to_owned()),
        ("GET", format!("/v1/shares/{id}")),
        ("POST", format!("/v1/shares/{id}/resend")),
        ("POST", format!("/v1/shares/{id}/send")),
        ("DELETE", format!("/v1/shares/{id}")),
    ];
    let body = share_body();
    for (method, path) in &routes {
        for key in [None, Some("sp_live_wrong"), Some(""), Some("sp_live_")] {
            let reply = call(&app, method, path, key, Some(&body)).await;
            assert_eq!(reply.status, 401, "{method} {path} with {key:?}: {}", reply.text());
            reply.err(401, "unauthorized");
        }
        // Not a bearer scheme at all.
        let req = app
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), app.url(path))
            .header("Authorization", format!("Basic {}", b64(format!("x:{}", app.api_key).as_bytes())))
            .json(&body);
        Reply::from(req.send().await.unwrap()).await.err(401, "unauthorized");
        // The key with an extra character.
        let reply = call(&app, method, path, Some(&format!("{}x", app.api_key)), Some(&body)).await;
        reply.err(401, "unauthorized");
    }
    // The scheme's name is case-insensitive (RFC 9110): the right key works whatever its case.
    for scheme in ["bearer", "BEARER"] {
        let req = app.http.get(app.url(&format!("/v1/shares/{id}"))).header("Authorization", format!("{scheme} {}", app.api_key));
        Reply::from(req.send().await.unwrap()).await.ok(200);
    }
    // Nothing happened to the share, and nothing else was created.
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"].as_array().unwrap().len(), 1);
    assert_eq!(app.sent_sms().await.len(), 1);
}

#[tokio::test]
async fn a_revoked_key_stops_working_and_others_keep_working() {
    let app = TestApp::spawn().await;
    let key2 = app.add_practice("Praxis Beispiel", Policy::default()).await;
    assert!(key2.starts_with("sp_live_"), "{key2}");
    let share = post_share_with_key(&app, &key2, &share_body()).await.ok(201);
    let id = id_of(&share);
    call(&app, "GET", &format!("/v1/shares/{id}"), Some(&key2), None).await.ok(200);

    app.revoke_key(&key2).await;
    call(&app, "GET", &format!("/v1/shares/{id}"), Some(&key2), None).await.err(401, "unauthorized");
    post_share_with_key(&app, &key2, &share_body()).await.err(401, "unauthorized");
    call(&app, "GET", "/v1/shares", Some(&key2), None).await.err(401, "unauthorized");

    // The default practice's key is untouched.
    create_share(&app, &share_body()).await;
    // The patient side of the share made with the now revoked key still works.
    public_get(&app, &id).await.ok(200);
}

#[tokio::test]
async fn a_practice_cannot_see_or_touch_another_practices_share() {
    let app = TestApp::spawn().await;
    let key2 = app.add_practice("Praxis Beispiel", Policy::default()).await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);

    let get = call(&app, "GET", &format!("/v1/shares/{id}"), Some(&key2), None).await;
    get.err(404, "not_found");
    // Indistinguishable from an unknown id.
    let unknown = call(&app, "GET", "/v1/shares/AAAAAAAAAAAAAAAAAAAAAA", Some(&key2), None).await;
    unknown.err(404, "not_found");
    assert_eq!(get.json["error"], unknown.json["error"]);

    call(&app, "DELETE", &format!("/v1/shares/{id}"), Some(&key2), None).await.err(404, "not_found");
    call(&app, "POST", &format!("/v1/shares/{id}/resend"), Some(&key2), None).await.err(404, "not_found");
    call(&app, "POST", &format!("/v1/shares/{id}/send"), Some(&key2), None).await.err(404, "not_found");

    let list2 = call(&app, "GET", "/v1/shares", Some(&key2), None).await.ok(200);
    assert_eq!(list2["shares"], json!([]), "{list2}");

    // Nothing happened: still active, one SMS, the code still verifies.
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "active");
    assert!(!event_types(&view).contains(&"revoked".to_owned()));
    assert!(!event_types(&view).contains(&"resent".to_owned()));
    assert_eq!(app.sent_sms().await.len(), 1);
    verify_ok(&app, &id, &code).await;

    // And the other way round.
    let theirs = post_share_with_key(&app, &key2, &share_body()).await.ok(201);
    get_share_reply(&app, &id_of(&theirs)).await.err(404, "not_found");
    let mine = list_shares(&app, "").await.ok(200);
    let ids: Vec<&str> = mine["shares"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![id.as_str()]);
}

#[tokio::test]
async fn a_second_practice_name_shows_in_its_shares() {
    let app = TestApp::spawn().await;
    let key2 = app.add_practice("Praxis Beispiel", Policy::default()).await;
    let share = post_share_with_key(&app, &key2, &share_body()).await.ok(201);
    let public = public_get(&app, &id_of(&share)).await.ok(200);
    assert_eq!(public["practice_name"], "Praxis Beispiel");
    let email = app.sent_emails().await.pop().unwrap();
    assert!(email.body.contains("Praxis Beispiel") || email.subject.contains("Praxis Beispiel"), "{email:?}");
}

#[tokio::test]
async fn the_patient_api_needs_no_practice_key() {
    let app = TestApp::spawn().await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);
    public_get(&app, &id).await.ok(200);
    verify_ok(&app, &id, &code).await;
}
