//! The patient's download page: `GET /s/{id}` and `GET /assets/{file}`, from the files in
//! `page/` at the top of the repository, embedded in the binary so that `sealpost serve` works
//! from any directory. (On AWS, CloudFront serves the same files from the page bucket.)
//!
//! The HTML is the same for every id — the page asks the API what to show — so an unknown,
//! expired or revoked link looks the same as a good one until the API says otherwise. The server
//! only fills in the static texts and `<html lang>` in the browser's language (`Accept-Language`),
//! so the first paint is already in the right language; the script does everything else.

use crate::error::Error;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::LazyLock;

/// No inline script or style, nothing from elsewhere, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page's languages; without any of them in `Accept-Language`, English.
pub const LANGUAGES: [&str; 4] = ["de", "fr", "it", "en"];
const DEFAULT_LANGUAGE: &str = "en";

const INDEX_HTML: &str = include_str!("../../../page/index.html");
const APP_JS: &str = include_str!("../../../page/app.js");
const STYLE_CSS: &str = include_str!("../../../page/style.css");
const I18N: [(&str, &str); 4] = [
    ("de", include_str!("../../../page/i18n/de.json")),
    ("fr", include_str!("../../../page/i18n/fr.json")),
    ("it", include_str!("../../../page/i18n/it.json")),
    ("en", include_str!("../../../page/i18n/en.json")),
];

/// A short hash of every asset: the HTML asks for `?v=<this>`, so assets can be cached for a
/// year and a new build is never mixed with an old cached script.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [INDEX_HTML, APP_JS, STYLE_CSS].into_iter().chain(I18N.iter().map(|(_, text)| *text)) {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    hex::encode(&ctx.finish().as_ref()[..6])
});

/// The HTML in each language, rendered once.
static PAGES: LazyLock<Vec<(&'static str, String)>> =
    LazyLock::new(|| I18N.iter().map(|(lang, json)| (*lang, render_index(lang, json))).collect());

/// `GET /s/{id}` (also with a trailing slash, as CloudFront serves it) and `GET /assets/{*file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/s/{id}", get(index)).route("/s/{id}/", get(index)).route("/assets/{*file}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    let lang = negotiate(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let html = PAGES.iter().find(|(l, _)| *l == lang).map(|(_, html)| html.clone()).unwrap_or_default();
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    h.insert(header::HeaderName::from_static("x-robots-tag"), HeaderValue::from_static("noindex, nofollow"));
    with_page_headers(response)
}

async fn asset(Path(file): Path<String>, uri: Uri) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        other => match other.strip_prefix("i18n/").and_then(|f| f.strip_suffix(".json")) {
            Some(lang) => match I18N.iter().find(|(l, _)| *l == lang) {
                Some((_, json)) => (*json, "application/json; charset=utf-8"),
                None => return Error::NotFound.into_response(),
            },
            None => return Error::NotFound.into_response(),
        },
    };
    let versioned = uri.query().is_some_and(|q| q.split('&').any(|p| p == format!("v={}", *VERSION)));
    let cache = if versioned { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    with_page_headers(response)
}

/// The page's own security headers (the router adds nosniff, referrer, framing and HSTS to
/// every answer too; they are set here as well so the page never depends on that layer).
fn with_page_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    response
}

/// The page language for an `Accept-Language` header: the highest-ranked one we have.
pub fn negotiate(accept_language: Option<&str>) -> &'static str {
    let mut best: Option<(f32, &'static str)> = None;
    for item in accept_language.unwrap_or_default().split(',') {
        let mut params = item.split(';');
        let tag = params.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = params.filter_map(|p| p.trim().strip_prefix("q=")).find_map(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or_default();
        if let Some(lang) = LANGUAGES.iter().find(|l| **l == primary)
            && q > 0.0
            && best.is_none_or(|(best_q, _)| q > best_q)
        {
            best = Some((q, lang));
        }
    }
    best.map_or(DEFAULT_LANGUAGE, |(_, lang)| lang)
}

/// `index.html` in one language: `<html lang>`, versioned asset URLs, and the text of every
/// element marked `data-i18n="key"` from that language's file.
fn render_index(lang: &str, json: &str) -> String {
    let texts: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    let html = INDEX_HTML
        .replacen("<html lang=\"en\"", &format!("<html lang=\"{lang}\""), 1)
        .replace("/assets/app.js\"", &format!("/assets/app.js?v={}\"", *VERSION))
        .replace("/assets/style.css\"", &format!("/assets/style.css?v={}\"", *VERSION));
    localize(&html, &texts)
}

/// Replaces the text after each `data-i18n="key"` attribute's tag (up to the next `<`).
fn localize(html: &str, texts: &serde_json::Map<String, serde_json::Value>) -> String {
    const MARK: &str = "data-i18n=\"";
    let mut out = String::with_capacity(html.len() + html.len() / 4);
    let mut rest = html;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let Some(key_len) = after.find('"') else { break };
        let key = &after[..key_len];
        let Some(tag_end) = after[key_len..].find('>') else { break };
        let text_start = at + MARK.len() + key_len + tag_end + 1;
        let Some(text_len) = rest[text_start..].find('<') else { break };
        out.push_str(&rest[..text_start]);
        match texts.get(key).and_then(|v| v.as_str()) {
            Some(text) => out.push_str(&escape_html(text)),
            None => out.push_str(&rest[text_start..text_start + text_len]),
        }
        rest = &rest[text_start + text_len..];
    }
    out.push_str(rest);
    out
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(json: &str) -> BTreeSet<String> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).expect("valid JSON");
        assert!(map.values().all(|v| v.as_str().is_some_and(|s| !s.trim().is_empty())), "every text is a non-empty string");
        map.keys().cloned().collect()
    }

    #[test]
    fn every_language_has_every_text() {
        let english = keys(I18N[3].1);
        for (lang, json) in I18N {
            assert_eq!(keys(json), english, "{lang}.json has the same keys as en.json");
        }
    }

    #[test]
    fn every_marked_element_has_a_text() {
        let english = keys(I18N[3].1);
        for part in INDEX_HTML.split("data-i18n=\"").skip(1) {
            let key = part.split('"').next().unwrap_or_default();
            assert!(english.contains(key), "index.html uses {key}, missing from en.json");
        }
    }

    #[test]
    fn the_html_is_rendered_per_language_without_inline_code() {
        for (lang, html) in PAGES.iter() {
            assert!(html.contains(&format!("<html lang=\"{lang}\"")), "{lang}");
            assert!(html.contains(&format!("/assets/app.js?v={}", *VERSION)));
            assert!(!html.contains("style=\"") && !html.to_lowercase().contains("<script>"), "no inline style or script");
            let inline_handler = html.match_indices(" on").any(|(i, _)| {
                let name: String = html[i + 3..].chars().take_while(|c| c.is_ascii_lowercase()).collect();
                !name.is_empty() && html[i + 3 + name.len()..].starts_with('=')
            });
            assert!(!inline_handler, "no inline event handlers");
        }
        let german = &PAGES.iter().find(|(l, _)| *l == "de").expect("de").1;
        assert!(german.contains(">Ihre Dokumente</title>"), "{german}");
    }

    #[test]
    fn localize_escapes_and_keeps_unknown_keys() {
        let mut texts = serde_json::Map::new();
        texts.insert("a".into(), serde_json::Value::String("x < y & \"z\"".into()));
        let html = "<p data-i18n=\"a\">old</p><span data-i18n=\"b\">keep</span>";
        assert_eq!(
            localize(html, &texts),
            "<p data-i18n=\"a\">x &lt; y &amp; &quot;z&quot;</p><span data-i18n=\"b\">keep</span>"
        );
    }

    #[test]
    fn the_browser_language_wins_by_rank() {
        assert_eq!(negotiate(Some("de-CH,de;q=0.9,en;q=0.8")), "de");
        assert_eq!(negotiate(Some("es-ES,es;q=0.9,fr;q=0.5,it;q=0.7")), "it");
        assert_eq!(negotiate(Some("en-GB;q=0.4, FR-ch")), "fr");
        assert_eq!(negotiate(Some("it;q=0")), "en");
        assert_eq!(negotiate(Some("xx, *")), "en");
        assert_eq!(negotiate(None), "en");
    }
}
