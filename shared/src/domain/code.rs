//! One-time codes: six digits, drawn without modulo bias, typed by patients in any common shape.

use super::ids::random_bytes;
use icu_properties::props::{Dash, DefaultIgnorableCodePoint, GeneralCategory};
use icu_properties::{CodePointMapData, CodePointSetData};
use std::fmt;

/// A six-digit one-time code. Only ever held in memory: stored as an HMAC, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a code is six digits, written as 123456, 123-456 or 123 456")]
pub struct CodeParseError;

impl Code {
    /// Draws a code from the OS CSPRNG.
    ///
    /// `u32 % 1_000_000` alone would favour low codes slightly, because 2^32 is not a multiple
    /// of a million; values at or above the largest multiple are drawn again (rejection sampling).
    pub fn generate() -> Self {
        const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000) - 1; // 4_293_999_999
        loop {
            let n = u32::from_be_bytes(random_bytes::<4>());
            if n <= LIMIT {
                return Self(format!("{:06}", n % 1_000_000));
            }
        }
    }

    /// Accepts `123456`, `123-456`, `123 456`, and the same with spaces around it, as pasted
    /// from an SMS. Anything else is refused rather than guessed at.
    pub fn parse(input: &str) -> Result<Self, CodeParseError> {
        let is_separator = |c: char| matches!(c, ' ' | '-' | '\u{a0}' | '\u{2009}' | '\u{202f}');
        let chars: Vec<char> = input.trim().chars().collect();
        // One separator, and only between the two groups of three.
        let digits: String = if chars.len() == 7 && is_separator(chars[3]) {
            chars[..3].iter().chain(&chars[4..]).collect()
        } else {
            chars.iter().collect()
        };
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) { Ok(Self(digits)) } else { Err(CodeParseError) }
    }

    /// The six digits, as hashed and as sent by SMS.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// `123-456`: easier to read back on the phone.
    pub fn grouped(&self) -> String {
        format!("{}-{}", &self.0[..3], &self.0[3..])
    }
}

/// Debug never shows the digits, so a code cannot leak through `{:?}` into a log line.
impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(******)")
    }
}

/// True when `text` holds anything shaped like a code. A practice's message travels by email,
/// which must never carry a code, so such a message is refused outright.
///
/// Digits (of any script) with nothing but separators between them — spaces, dashes, dots,
/// slashes of any kind, invisible characters — read as one number: `12 34 56` and `1 2 3 4 5 6`
/// are a code to the eye as much as `123456`. Such a number is code-shaped when it has six or
/// more digits in a row, six digits in all, or two groups of three side by side (`123-456`, as
/// Sealpost writes a code, even inside a longer number). Dates with the year in full and
/// longer reference numbers (`12.03.2025`, `2024-001`) are not.
pub fn message_contains_code(text: &str) -> bool {
    // The lengths of the digit runs of the number being read.
    let mut runs: Vec<usize> = Vec::new();
    let mut separated = false;
    for c in text.chars() {
        if is_decimal_digit(c) {
            match runs.last_mut() {
                Some(run) if !separated => *run += 1,
                _ => runs.push(1),
            }
            separated = false;
        } else if !runs.is_empty() && is_code_separator(c) {
            separated = true;
        } else {
            if is_code_shaped(&runs) {
                return true;
            }
            runs.clear();
            separated = false;
        }
    }
    is_code_shaped(&runs)
}

fn is_code_shaped(runs: &[usize]) -> bool {
    runs.iter().sum::<usize>() == 6 || runs.iter().any(|&run| run >= 6) || runs.windows(2).any(|w| w == [3, 3])
}

/// A decimal digit of any script: `１２３４５６` (full width) reads as a code too. Public for
/// the property tests, whose generators must agree with it on what a digit is (their regex
/// engine's Unicode tables may be older than ICU's).
pub fn is_decimal_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && CodePointMapData::<GeneralCategory>::new().get(c) == GeneralCategory::DecimalNumber)
}

/// What may stand between the digits of a number written out: any space, any dash (Unicode's
/// `Dash` property: hyphens, en and em dashes, minus signs), the dots, slashes and underscores a
/// word processor or a phone puts in place of the `.`, `/` or `_` typed, and what cannot be seen
/// at all (zero-width spaces, soft hyphens, combining marks).
fn is_code_separator(c: char) -> bool {
    if c.is_whitespace() || matches!(c, '-' | '.' | '/' | '\\' | '_') {
        return true;
    }
    if c.is_ascii() {
        return false;
    }
    matches!(c, '\u{00b7}' | '\u{0387}' | '\u{2022}' | '\u{2024}'..='\u{2027}' | '\u{2219}' | '\u{22c5}' | '\u{2e31}' | '\u{2e33}'
            | '\u{3002}' | '\u{30fb}' | '\u{fe52}' | '\u{ff0e}' | '\u{ff61}' | '\u{ff65}' // dots
            | '\u{2044}' | '\u{2215}' | '\u{2216}' | '\u{2571}' | '\u{2572}' | '\u{27cb}' | '\u{27cd}' | '\u{29f5}' | '\u{29f8}' | '\u{29f9}'
            | '\u{fe68}' | '\u{ff0f}' | '\u{ff3c}' // slashes
            | '\u{02d7}' | '\u{2043}' | '\u{2796}' | '\u{fe4d}'..='\u{fe4f}' | '\u{ff3f}') // minus and underscore look-alikes
        || CodePointSetData::new::<Dash>().contains(c)
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || matches!(CodePointMapData::<GeneralCategory>::new().get(c), GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_written_forms() {
        for input in ["123456", "123-456", "123 456", "  123 456\n", "123\u{a0}456"] {
            assert_eq!(Code::parse(input).map(|c| c.digits().to_owned()), Ok("123456".into()), "{input:?}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for input in
            ["", "12345", "1234567", "12a456", "123--456", "1-2-3456", "１２３４５６", "123+456", "1-23456", "12345 6", "1234-56"]
        {
            assert_eq!(Code::parse(input), Err(CodeParseError), "{input:?}");
        }
    }

    #[test]
    fn generated_codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200).map(|_| Code::generate().digits().to_owned()).collect();
        assert!(codes.iter().all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(codes.len() > 190, "200 draws from a million should almost never collide");
    }

    #[test]
    fn debug_hides_the_digits() {
        let c = Code::parse("123456").unwrap();
        assert!(!format!("{c:?}").contains("123"));
        assert_eq!(c.grouped(), "123-456");
    }

    #[test]
    fn code_shaped_messages_are_spotted() {
        for m in [
            "Ihr Code: 123456",
            "code 123-456 thanks",
            "123 456",
            "x0123456789",
            "987.654",
            "Code: 123\u{2013}456",
            "123\u{2014}456",
            "123\u{2011}456",
            "123\u{2212}456",
            "123\u{2007}456",
            "123\t456",
        ] {
            assert!(message_contains_code(m), "{m:?}");
        }
        // Six digits with any separators between them (issue 17): spaces, several of them, dashes
        // between spaces, pairs, singles, any dot or slash, invisible characters, full-width digits.
        for m in [
            "123  456",
            "123 - 456",
            "12 34 56",
            "1 2 3 4 5 6",
            "Code: 1-2-3-4-5-6.",
            "12.34.56",
            "12/34/56",
            "123\u{2215}456",
            "12\u{ff0e}34\u{ff0e}56",
            "1\u{200b}2\u{200b}3\u{200b}4\u{200b}5\u{200b}6",
            "123\u{ad}456",
            "１２３４５６",
            "1\u{fe0f}\u{20e3}23456",
            "Tel 044 123 456",
            "Code\n123\n456\n",
        ] {
            assert!(message_contains_code(m), "{m:?}");
        }
        for m in [
            "Termin am 12.03.2025 um 14:30",
            "Bitte 2 Tabletten",
            "Tel 044 12 34",
            "Rechnung 2024-001",
            "",
            "1 2 3, 4 5 6",
            "Zimmer 12, Stock 3456",
            "12.03.2025 14.30",
            "2 x 3 Tabletten, 45 mg",
        ] {
            assert!(!message_contains_code(m), "{m:?}");
        }
    }
}
