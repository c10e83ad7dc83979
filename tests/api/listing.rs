//! `GET /v1/shares?cursor=&limit=`: newest first, paginated, strict about its parameters.

use crate::helpers::*;

#[tokio::test]
async fn pages_walk_every_share_newest_first_without_duplicates() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(id_of(&create_share(&app, &share_body()).await));
        app.advance(Duration::minutes(1));
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut query = "?limit=2".to_owned();
    loop {
        let page = list_shares(&app, &query).await.ok(200);
        pages += 1;
        let shares = page["shares"].as_array().unwrap();
        assert!(shares.len() <= 2, "limit 2: {page}");
        for s in shares {
            assert!(s.get("events").is_none_or(Value::is_null), "no events in the listing: {s}");
            assert_eq!(s["status"], "active");
            assert!(s["reference"].as_str().is_some());
            seen.push(id_of(s));
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(pages < 10, "the cursor never ends");
                query = format!("?limit=2&cursor={}", encode(cursor));
            }
            None => {
                assert!(page["next_cursor"].is_null(), "next_cursor is null at the end: {page}");
                break;
            }
        }
    }
    assert_eq!(seen, newest_first, "every share once, newest first");
    assert!((3..=4).contains(&pages), "5 shares in pages of 2: {pages} pages");

    // Default limit (20) gets all in one page.
    let all = list_shares(&app, "").await.ok(200);
    let ids: Vec<String> = all["shares"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, newest_first);
    assert!(all["next_cursor"].is_null());
    // limit=5 exactly: everything, and at most an empty page after it.
    let page = list_shares(&app, "?limit=5").await.ok(200);
    assert_eq!(page["shares"].as_array().unwrap().len(), 5);
    if let Some(c) = page["next_cursor"].as_str() {
        let rest = list_shares(&app, &format!("?limit=5&cursor={}", encode(c))).await.ok(200);
        assert_eq!(rest["shares"], json!([]));
    }
}

#[tokio::test]
async fn shares_created_in_the_same_instant_are_not_lost() {
    let app = TestApp::spawn().await;
    let mut created = std::collections::HashSet::new();
    for _ in 0..5 {
        created.insert(id_of(&create_share(&app, &share_body()).await));
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    for _ in 0..10 {
        let page = list_shares(&app, &query).await.ok(200);
        seen.extend(page["shares"].as_array().unwrap().iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={}", encode(c)),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "no duplicates, none missing: {seen:?}");
    assert_eq!(seen.into_iter().collect::<std::collections::HashSet<_>>(), created);
}

#[tokio::test]
async fn bad_parameters_are_invalid_requests() {
    let app = TestApp::spawn().await;
    create_share(&app, &share_body()).await;
    for q in ["?limit=0", "?limit=101", "?limit=-1", "?limit=abc", "?limit=2.5"] {
        let r = list_shares(&app, q).await;
        r.err(400, "invalid_request");
        assert!(r.json["error"]["field"].as_str().is_some_and(|f| f.contains("limit")), "{q}: {}", r.text());
    }
    for q in ["?cursor=garbage", "?cursor=%00%01", "?cursor=AAAA", "?limit=2&cursor=!!!"] {
        let r = list_shares(&app, q).await;
        r.err(400, "invalid_request");
        assert!(r.json["error"]["field"].as_str().is_some_and(|f| f.contains("cursor")), "{q}: {}", r.text());
    }
    list_shares(&app, "?limit=1").await.ok(200);
    list_shares(&app, "?limit=100").await.ok(200);
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test]
async fn the_default_page_is_twenty() {
    let app = TestApp::spawn().await;
    for _ in 0..21 {
        create_share(&app, &share_body()).await;
        app.advance(Duration::seconds(1));
    }
    let page = list_shares(&app, "").await.ok(200);
    assert_eq!(page["shares"].as_array().unwrap().len(), 20);
    let cursor = page["next_cursor"].as_str().expect("a next page").to_owned();
    let rest = list_shares(&app, &format!("?cursor={}", encode(&cursor))).await.ok(200);
    assert_eq!(rest["shares"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
}
