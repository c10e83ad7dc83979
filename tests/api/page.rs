//! The download page `GET /s/{id}`: security headers, no document names, the browser's language.

use crate::helpers::*;

async fn page(app: &TestApp, id: &str, accept_language: Option<&str>) -> Reply {
    let mut req = app.http.get(app.url(&format!("/s/{id}")));
    if let Some(lang) = accept_language {
        req = req.header("Accept-Language", lang);
    }
    Reply::from(req.send().await.expect("page")).await
}

#[tokio::test]
async fn the_page_is_served_with_strict_security_headers() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let r = page(&app, &id_of(&share), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/html"), "{ct}");
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let directive = |name: &str| csp.split(';').map(str::trim).find(|d| d.starts_with(&format!("{name} "))).map(str::to_owned);
    let scripts = directive("script-src").or_else(|| directive("default-src")).expect("script-src or default-src");
    assert!(!scripts.contains("unsafe-inline"), "no inline script: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(r.header("referrer-policy").as_deref(), Some("no-referrer"));
    assert!(r.header("strict-transport-security").is_some_and(|h| h.contains("max-age=")), "HSTS");
    let html = r.text();
    assert!(!html.contains(FILENAME), "no document names on the page before verification");
    assert!(!html.contains(PHONE) && !html.contains(EMAIL), "no personal data on the page");
    assert!(!html.to_lowercase().contains("<script>"), "no inline script");
    // With a trailing slash (a link copied by hand; CloudFront serves both): the same page.
    let slashed = Reply::from(app.http.get(app.url(&format!("/s/{}/", id_of(&share)))).send().await.expect("page")).await;
    assert_eq!(slashed.status, 200);
    assert_eq!(slashed.text(), html);
}

#[tokio::test]
async fn the_page_follows_the_browser_language() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    let mut texts = std::collections::HashSet::new();
    for lang in ["de", "fr", "it", "en"] {
        let r = page(&app, &id, Some(&format!("{lang}-CH,{lang};q=0.9"))).await;
        assert_eq!(r.status, 200);
        let html = r.text();
        assert!(html.contains(&format!("lang=\"{lang}\"")), "{lang}: page language attribute");
        texts.insert(html);
    }
    assert_eq!(texts.len(), 4, "four page languages");
}

#[tokio::test]
async fn the_page_for_an_unknown_id_shows_nothing_of_any_share() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let r = page(&app, "AAAAAAAAAAAAAAAAAAAAAA", None).await;
    assert!(r.status == 404 || r.status == 200, "{}", r.status);
    assert!(!r.text().contains(share["reference"].as_str().unwrap()));
}
