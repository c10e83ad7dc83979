//! The texts patients receive: email (plain text + HTML) and SMS, in de, fr, it, en.
//!
//! Every string of a language sits in `templates/i18n/<lang>.json` and is itself a small
//! minijinja template (`{{ practice }}`, `{{ reference }}`, …); `templates/email.{txt,html}` lay
//! them out. HTML is auto-escaped by minijinja, so a practice's message cannot inject markup.
//! Emails carry the practice name, reference, link, expiry and the practice's message — never
//! a document name, never a code.

use crate::domain::{AuthMethod, Language};
use chrono::{DateTime, Utc};
use minijinja::{Environment, context};
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailText {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What an email about a share says.
#[derive(Debug, Clone)]
pub struct ShareNotice<'a> {
    pub language: Language,
    pub practice: &'a str,
    pub reference: &'a str,
    pub link: &'a str,
    pub expires_at: DateTime<Utc>,
    pub auth: AuthMethod,
    pub message: Option<&'a str>,
}

/// What an SMS with a code says. `host` is the download page's host, for the WebOTP line
/// (`@host #123456`) that lets Android Chrome offer to fill the code in.
#[derive(Debug, Clone)]
pub struct CodeSms<'a> {
    pub language: Language,
    pub practice: &'a str,
    pub reference: &'a str,
    /// The code's six digits ([`Code::digits`]), or a preview's placeholder of the same length.
    pub code: &'a str,
    pub host: &'a str,
}

struct Texts {
    env: Environment<'static>,
    strings: BTreeMap<Language, BTreeMap<String, String>>,
}

fn texts() -> &'static Texts {
    static TEXTS: OnceLock<Texts> = OnceLock::new();
    TEXTS.get_or_init(|| {
        let mut env = Environment::new();
        // Templates are compiled into the binary; a broken one is a build bug that the tests
        // below catch, so failing loudly at first use is right.
        env.add_template("email.txt", include_str!("../templates/email.txt")).expect("email.txt parses");
        env.add_template("email.html", include_str!("../templates/email.html")).expect("email.html parses");
        let raw = [
            (Language::De, include_str!("../templates/i18n/de.json")),
            (Language::Fr, include_str!("../templates/i18n/fr.json")),
            (Language::It, include_str!("../templates/i18n/it.json")),
            (Language::En, include_str!("../templates/i18n/en.json")),
        ];
        let strings = raw
            .into_iter()
            .map(|(lang, json)| (lang, serde_json::from_str(json).expect("i18n file is a JSON object of strings")))
            .collect();
        Texts { env, strings }
    })
}

impl Texts {
    fn string(&self, lang: Language, key: &str, ctx: &minijinja::Value) -> String {
        let raw = self.strings.get(&lang).and_then(|m| m.get(key)).map(String::as_str).unwrap_or(key);
        self.env.render_str(raw, ctx).unwrap_or_else(|_| raw.to_owned())
    }
}

fn format_date(at: DateTime<Utc>, lang: Language) -> String {
    match lang {
        Language::En => at.format("%-d %B %Y").to_string(),
        _ => at.format("%d.%m.%Y").to_string(),
    }
}

fn auth_key(auth: AuthMethod) -> &'static str {
    match auth {
        AuthMethod::Sms => "auth_sms",
        AuthMethod::Manual => "auth_manual",
        AuthMethod::DateOfBirth => "auth_date_of_birth",
        AuthMethod::InsuranceNumber => "auth_insurance_number",
    }
}

pub fn render_email(n: &ShareNotice<'_>) -> EmailText {
    let texts = texts();
    let lang = n.language;
    let ctx = context! {
        practice => n.practice,
        reference => n.reference,
        expires => format_date(n.expires_at, lang),
    };
    let keys = ["subject", "greeting", "intro", "open", "button", "valid", "message", "footer"];
    let mut t: BTreeMap<&str, String> = keys.iter().map(|k| (*k, texts.string(lang, k, &ctx))).collect();
    t.insert("auth", texts.string(lang, auth_key(n.auth), &ctx));
    let message_lines: Vec<String> = n.message.map(|m| m.lines().map(str::to_owned).collect()).unwrap_or_default();
    let page = context! {
        t => &t,
        lang => lang.as_str(),
        // Built by us from the configured base URL and a base64url id: nothing to escape, and
        // minijinja would otherwise write every `/` as `&#x2f;`.
        link => minijinja::Value::from_safe_string(n.link.to_owned()),
        message => n.message.map(str::to_owned),
        message_lines => message_lines,
    };
    let render = |name: &str| -> String {
        texts.env.get_template(name).and_then(|tpl| tpl.render(&page)).expect("email templates render")
    };
    EmailText { subject: t["subject"].clone(), text: render("email.txt"), html: render("email.html") }
}

pub fn render_sms(s: &CodeSms<'_>) -> String {
    let ctx = context! {
        practice => s.practice, reference => s.reference, code => s.code, host => s.host,
    };
    texts().string(s.language, "sms", &ctx)
}

/// The number of GSM 03.38 septets `text` needs, or `None` if it holds a character outside
/// the GSM 7-bit alphabet (the SMS would then go as UCS-2, 70 characters a segment).
pub fn gsm7_septets(text: &str) -> Option<usize> {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENDED: &str = "^{}\\[~]|€\u{c}";
    text.chars().try_fold(0usize, |n, c| {
        if BASIC.contains(c) {
            Some(n + 1)
        } else if EXTENDED.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    })
}

/// How an SMS's text travels: GSM 03.38's 7-bit alphabet, or UCS-2 when one character is
/// outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SmsEncoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

/// The encoding `text` goes in and the number of segments (billed messages) it takes: one of
/// 160 septets or 70 UCS-2 units, or, when longer, parts of 153 and 67 (each part gives room to
/// the header that joins them, 3GPP TS 23.040). A GSM-7 extension character (two septets) is
/// never split between parts, and neither is a UTF-16 surrogate pair.
pub fn sms_segments(text: &str) -> (SmsEncoding, usize) {
    const GSM7_SINGLE: usize = 160;
    const GSM7_PART: usize = 153;
    const UCS2_SINGLE: usize = 70;
    const UCS2_PART: usize = 67;
    let (encoding, units, single, part): (_, Vec<usize>, _, _) = if gsm7_septets(text).is_some() {
        let units = text.chars().map(|c| gsm7_septets(c.encode_utf8(&mut [0; 4])).unwrap_or(1)).collect();
        (SmsEncoding::Gsm7, units, GSM7_SINGLE, GSM7_PART)
    } else {
        (SmsEncoding::Ucs2, text.chars().map(char::len_utf16).collect(), UCS2_SINGLE, UCS2_PART)
    };
    if units.iter().sum::<usize>() <= single {
        return (encoding, 1);
    }
    let (mut parts, mut used) = (1, 0);
    for unit in units {
        if used + unit > part {
            parts += 1;
            used = 0;
        }
        used += unit;
    }
    (encoding, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG_PRACTICE: &str = "Gemeinschaftspraxis Dres. Muster & Weber"; // 40 characters

    fn notice(lang: Language, message: Option<&str>) -> ShareNotice<'_> {
        ShareNotice {
            language: lang,
            practice: "Praxis <Muster>",
            reference: "SP-7K4Q-9XMD",
            link: "https://docs.example.ch/s/AbCdEfGhIjKlMnOpQrStUv",
            expires_at: DateTime::parse_from_rfc3339("2026-12-23T10:00:00Z").unwrap().with_timezone(&Utc),
            auth: AuthMethod::Sms,
            message,
        }
    }

    #[test]
    fn sms_fits_one_gsm7_segment_in_every_language() {
        assert_eq!(LONG_PRACTICE.chars().count(), 40);
        for lang in Language::ALL {
            let body = render_sms(&CodeSms {
                language: lang,
                practice: LONG_PRACTICE,
                reference: "SP-7K4Q-9XMD",
                code: "123456",
                host: "dokumente.praxis-example.ch",
            });
            let septets = gsm7_septets(&body).unwrap_or_else(|| panic!("{lang:?} SMS is not GSM-7: {body}"));
            assert!(septets <= 160, "{lang:?} SMS needs {septets} septets: {body}");
            assert!(body.contains("123456") && body.contains("SP-7K4Q-9XMD"), "{body}");
            assert!(body.ends_with("@dokumente.praxis-example.ch #123456"), "WebOTP line last: {body}");
        }
    }

    #[test]
    fn gsm7_counts_extension_characters_twice_and_refuses_others() {
        assert_eq!(gsm7_septets("abc"), Some(3));
        assert_eq!(gsm7_septets("€"), Some(2));
        assert_eq!(gsm7_septets("ê"), None);
    }

    #[test]
    fn segments_follow_the_encodings_limits() {
        assert_eq!(sms_segments(&"a".repeat(160)), (SmsEncoding::Gsm7, 1));
        assert_eq!(sms_segments(&"a".repeat(161)), (SmsEncoding::Gsm7, 2));
        assert_eq!(sms_segments(&"a".repeat(306)), (SmsEncoding::Gsm7, 2));
        assert_eq!(sms_segments(&"a".repeat(307)), (SmsEncoding::Gsm7, 3));
        // 80 euro signs are 160 septets: one SMS; one more and the parts hold 76 each.
        assert_eq!(sms_segments(&"€".repeat(80)), (SmsEncoding::Gsm7, 1));
        assert_eq!(sms_segments(&"€".repeat(81)), (SmsEncoding::Gsm7, 2));
        assert_eq!(sms_segments(&format!("{}€", "a".repeat(152))), (SmsEncoding::Gsm7, 1));
        assert_eq!(sms_segments(&format!("{}€", "a".repeat(159))), (SmsEncoding::Gsm7, 2));
        // An escape pair is never split: 306 septets would fit two parts of 153, but with € as
        // the 153rd and 154th the first part ends at 152.
        assert_eq!(sms_segments(&format!("{}€{}", "a".repeat(152), "a".repeat(152))), (SmsEncoding::Gsm7, 3));
        assert_eq!(sms_segments(&"ê".repeat(70)), (SmsEncoding::Ucs2, 1));
        assert_eq!(sms_segments(&"ê".repeat(71)), (SmsEncoding::Ucs2, 2));
        // An emoji is two UTF-16 units.
        assert_eq!(sms_segments(&"😀".repeat(35)), (SmsEncoding::Ucs2, 1));
        assert_eq!(sms_segments(&format!("{}😀", "ê".repeat(69))), (SmsEncoding::Ucs2, 2));
        assert_eq!(sms_segments(""), (SmsEncoding::Gsm7, 1));
    }

    #[test]
    fn email_has_reference_link_message_and_no_markup_injection() {
        for lang in Language::ALL {
            let mail = render_email(&notice(lang, Some("Bitte <b>nüchtern</b> kommen.\nDanke")));
            for part in [&mail.text, &mail.html] {
                assert!(part.contains("SP-7K4Q-9XMD"), "{lang:?}: {part}");
                assert!(part.contains("https://docs.example.ch/s/AbCdEfGhIjKlMnOpQrStUv"), "{lang:?}");
            }
            assert!(mail.subject.contains("Praxis <Muster>") && mail.subject.contains("SP-7K4Q-9XMD"), "{}", mail.subject);
            assert!(mail.text.contains("Bitte <b>nüchtern</b> kommen."));
            assert!(mail.html.contains("Bitte &lt;b&gt;nüchtern&lt;"), "{}", mail.html);
            assert!(mail.html.contains("kommen.<br>Danke") && !mail.html.contains("<b>"), "{}", mail.html);
            assert!(mail.html.contains("Praxis &lt;Muster&gt;"));
            assert!(!mail.html.contains("<Muster>"));
        }
    }

    #[test]
    fn emails_differ_by_language_and_auth_method() {
        let de = render_email(&notice(Language::De, None));
        let fr = render_email(&notice(Language::Fr, None));
        assert!(de.text.contains("per SMS") && fr.text.contains("par SMS"));
        let mut dob = notice(Language::En, None);
        dob.auth = AuthMethod::DateOfBirth;
        assert!(render_email(&dob).text.contains("date of birth"));
        assert!(!de.text.contains("Nachricht der Praxis"), "no message heading without a message");
    }
}
