//! Property tests of what parses patient and practice input at the edge: one-time codes, file
//! names, and the `Content-Disposition` header built from a file name. Each property holds for
//! every input proptest can make, not for a handful of examples. (Base64 intake and list
//! cursors are private to the service: their properties sit in its unit tests.)
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sealpost::domain::{Code, Filename, is_decimal_digit, message_contains_code};
use sealpost::http::content_disposition;

/// The separators a patient may type between the two groups of three digits.
const CODE_SEPARATORS: [char; 5] = [' ', '-', '\u{a0}', '\u{2009}', '\u{202f}'];

/// Any Unicode text, biased towards the characters these parsers treat specially.
fn tricky_text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '/', '\\', '.', ' ', '-', '"', '%', ';', '\'', '\r', '\n', '\t', '\0', '\u{7f}', '\u{85}', '\u{a0}', '\u{200e}',
        '\u{202e}', '\u{2066}', '\u{2069}', '\u{2009}', '\u{202f}', '\u{feff}', 'é', '日', '😀', '0', '5', '9',
    ]);
    prop::collection::vec(prop_oneof![3 => any::<char>(), 2 => special], 0..40).prop_map(|v| v.into_iter().collect())
}

/// Names built from the pieces that make file names dangerous: dots, spaces, separators,
/// control and bidi characters, next to ordinary names.
fn path_like() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        ".", "..", " ", "/", "\\", "\u{0}", "\r\n", "\u{202e}", "\u{a0}", "\u{3000}", "C:", "a", "Befund", ".pdf", "x.txt",
    ]);
    prop::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat())
}

fn any_filename() -> impl Strategy<Value = String> {
    prop_oneof![tricky_text(), path_like()]
}

/// Up to three of the characters that may stand between the digits of a number: Unicode's
/// spaces, dashes and invisible characters, and the dots and slashes among its punctuation.
const SEPARATOR_RUN: &str = "[\\s\\p{Dash}\\p{Default_Ignorable_Code_Point}./\\\\_\\x{b7}\\x{2024}\\x{2027}\\x{ff0e}\\x{3002}\\x{2044}\\x{2215}\\x{ff0f}]{0,3}";

/// Text from `pattern` with no decimal digit of any script, as `message_contains_code` reads
/// digits: the regex engine's `[^0-9]` and `\PN` let through digits its tables do not know yet
/// (`𑷠`), or of scripts besides ASCII (`᧐`), which make a code next to them a longer number.
fn no_digit(pattern: &'static str) -> impl Strategy<Value = String> {
    pattern.prop_filter("a digit of any script", |s: &String| !s.chars().any(is_decimal_digit))
}

fn six_digits() -> impl Strategy<Value = String> {
    "[0-9]{6}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // ----- codes -----

    /// Every written form of a code reads back as its six digits, and the grouped form a
    /// practice reads out on the phone reads back too.
    #[test]
    fn every_written_form_of_a_code_parses_to_its_digits(
        digits in six_digits(),
        sep in prop::sample::select(CODE_SEPARATORS.to_vec()),
        grouped in any::<bool>(),
        before in "[ \t\r\n]{0,3}",
        after in "[ \t\r\n]{0,3}",
    ) {
        let written = if grouped { format!("{}{sep}{}", &digits[..3], &digits[3..]) } else { digits.clone() };
        let code = Code::parse(&format!("{before}{written}{after}")).unwrap();
        prop_assert_eq!(code.digits(), digits.as_str());
        let again = Code::parse(&code.grouped()).unwrap();
        prop_assert_eq!(again.digits(), digits.as_str());
    }

    /// No input panics; what is accepted is exactly the six ASCII digits of the input, in
    /// order, with at most one separator and surrounding whitespace besides.
    #[test]
    fn code_parsing_never_invents_or_drops_a_digit(input in tricky_text()) {
        if let Ok(code) = Code::parse(&input) {
            let digits = code.digits();
            prop_assert!(digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()));
            let typed: String = input.chars().filter(char::is_ascii_digit).collect();
            prop_assert_eq!(typed.as_str(), digits);
            prop_assert!(input.trim().chars().count() <= 7);
        }
    }

    /// Whatever the download page would accept as a code can never travel in a practice's
    /// email message: the message check is at least as wide as the code parser.
    #[test]
    fn anything_accepted_as_a_code_is_refused_in_a_message(input in tricky_text()) {
        if Code::parse(&input).is_ok() {
            prop_assert!(message_contains_code(&input), "{:?}", input);
        }
    }

    /// Around the code, text with no decimal digit of any script: the message check reads
    /// every script's digits (`１２３４５６` is a code too), so a digit next to the code makes a
    /// longer number (`123 456᧐`, as `123 4567`), which is not code-shaped.
    #[test]
    fn a_code_inside_any_text_is_spotted(
        prefix in no_digit("[^0-9]{0,20}"),
        digits in six_digits(),
        sep in prop::sample::select(CODE_SEPARATORS.to_vec()),
        grouped in any::<bool>(),
        suffix in no_digit("[^0-9]{0,20}"),
    ) {
        let code = if grouped { format!("{}{sep}{}", &digits[..3], &digits[3..]) } else { digits };
        let text = format!("{prefix}{code}{suffix}");
        prop_assert!(message_contains_code(&text), "{:?}", text);
    }

    /// Six digits with nothing but separators between them are a code to the eye, whatever
    /// the separators: any run of Unicode's spaces, dashes, dots, slashes or invisible
    /// characters, between any two of the digits (issue 17: `12 34 56`, `123 - 456`).
    #[test]
    fn six_digits_with_any_separators_are_spotted(
        prefix in no_digit("(\\PN{0,20}[a-zA-Z:(])?"),
        digits in six_digits(),
        gaps in prop::collection::vec(SEPARATOR_RUN, 5),
        suffix in no_digit("([a-zA-Z,:)]\\PN{0,20})?"),
    ) {
        let mut text = prefix;
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 {
                text.push_str(&gaps[i - 1]);
            }
            text.push(digit);
        }
        text.push_str(&suffix);
        prop_assert!(message_contains_code(&text), "{:?}", text);
    }

    #[test]
    fn text_without_six_digits_is_never_code_shaped(
        text in "\\PN{0,40}([0-9]{1,5}[ ./-]{0,2}[a-zA-Zäöüé,:;()]\\PN{0,8}){0,5}"
            .prop_filter("digits of other scripts", |t| t.chars().all(|c| c.is_ascii_digit() || !is_decimal_digit(c)))
    ) {
        // Runs of at most five digits, each followed by something no number is written with
        // (a letter, a comma): no code shape.
        prop_assert!(!message_contains_code(&text), "{:?}", text);
    }

    // ----- file names -----

    /// Whatever a practice sends as a file name, what is kept can go into a ZIP entry, a
    /// header and a page: never empty, no path separator, no control or bidi-override
    /// character, no leading dot (no hidden file, never `.` or `..`), at most 150 characters.
    #[test]
    fn a_sanitised_filename_is_always_safe(raw in any_filename()) {
        if let Ok(name) = Filename::parse(&raw) {
            let s = name.as_str();
            prop_assert!(!s.is_empty());
            prop_assert!(!s.contains(['/', '\\']), "{:?} → {:?}", raw, s);
            prop_assert!(!s.chars().any(char::is_control), "{:?} → {:?}", raw, s);
            let bidi = s.chars().any(|c| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'));
            prop_assert!(!bidi, "{:?} → {:?}", raw, s);
            prop_assert!(!s.starts_with('.') && !s.starts_with(char::is_whitespace), "{:?} → {:?}", raw, s);
            prop_assert!(s.chars().count() <= 150);
        }
    }

    #[test]
    fn sanitising_is_idempotent(raw in any_filename()) {
        if let Ok(name) = Filename::parse(&raw) {
            prop_assert_eq!(Filename::parse(name.as_str()).unwrap(), name);
        }
    }

    /// A plain name is kept as it is, whatever folders it came from.
    #[test]
    fn plain_names_survive_and_folders_go(
        stem in "[A-Za-z0-9äöüÄÖÜ][A-Za-z0-9äöüÄÖÜ _-]{0,60}[A-Za-z0-9]",
        ext in "[a-z]{1,4}",
        folders in prop::collection::vec(("[A-Za-z0-9 ._-]{0,12}", prop::sample::select(vec!['/', '\\'])), 0..4),
    ) {
        let name = format!("{stem}.{ext}");
        let path: String = folders.iter().map(|(dir, sep)| format!("{dir}{sep}")).collect::<String>() + &name;
        let parsed = Filename::parse(&path).unwrap();
        prop_assert_eq!(parsed.as_str(), name.as_str());
    }

    #[test]
    fn long_names_keep_their_extension(stem in "[a-z]{151,400}", ext in "[a-z]{1,8}") {
        let name = Filename::parse(&format!("{stem}.{ext}")).unwrap();
        prop_assert_eq!(name.as_str().chars().count(), 150);
        let wanted_suffix = format!(".{ext}");
        prop_assert!(name.as_str().ends_with(&wanted_suffix));
    }

    // ----- Content-Disposition -----

    /// For any name, the header is a legal header value (visible ASCII and spaces, so no
    /// CR/LF injection), the quoted fallback holds no quote or backslash, and the RFC 8187
    /// `filename*` gives back exactly the name.
    #[test]
    fn content_disposition_is_a_legal_header_that_round_trips(name in any_filename()) {
        let header = content_disposition(&name);
        prop_assert!(axum::http::HeaderValue::from_str(&header).is_ok(), "{:?}", header);
        prop_assert!(header.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
        let rest = header.strip_prefix("attachment; filename=\"").unwrap();
        let (fallback, extended) = rest.split_once("\"; filename*=UTF-8''").unwrap();
        prop_assert!(!fallback.contains(['"', '\\']));
        prop_assert_eq!(fallback.chars().count(), name.chars().count());
        prop_assert!(extended.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b)), "{:?}", extended);
        let decoded = percent_encoding::percent_decode_str(extended).decode_utf8().unwrap();
        prop_assert_eq!(decoded.as_ref(), name.as_str());
    }

    /// Printable ASCII other than `"` and `\` is its own fallback.
    #[test]
    fn ascii_names_are_their_own_fallback(name in "[ !#-\\[\\]-~]{0,60}") {
        let header = content_disposition(&name);
        let expected_prefix = format!("attachment; filename=\"{name}\"; ");
        prop_assert!(header.starts_with(&expected_prefix));
    }
}
