//! One-time codes: six digits, drawn without modulo bias, typed by patients in any common shape.

use super::ids::random_bytes;
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
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err(CodeParseError)
        }
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

/// True when `text` holds anything shaped like a code: six digits in a row, or three and three
/// with one separator between them. A practice's message travels by email, which must never
/// carry a code, so such a message is refused outright.
pub fn message_contains_code(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let run = i - start;
        if run >= 6 {
            return true;
        }
        // Exactly three digits, one separator, exactly three digits: `123-456`.
        if run == 3 && i + 1 < chars.len() && is_code_separator(chars[i]) {
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            if j - (i + 1) == 3 {
                return true;
            }
        }
    }
    false
}

/// Any space, and the dashes, dots and slashes a word processor or a phone's autocorrect puts in
/// place of the `-`, `.` or `/` typed: `123–456` (en dash) reads as a code just the same.
fn is_code_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '-' | '.' | '/' | '_' | '\u{00b7}' | '\u{2010}'..='\u{2015}' | '\u{2022}' | '\u{2024}' | '\u{2212}'
            | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}' | '\u{ff0e}' | '\u{ff0f}' | '\u{ff3f}')
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
        for input in ["", "12345", "1234567", "12a456", "123--456", "1-2-3456", "１２３４５６", "123+456", "1-23456", "12345 6", "1234-56"] {
            assert_eq!(Code::parse(input), Err(CodeParseError), "{input:?}");
        }
    }

    #[test]
    fn generated_codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> =
            (0..200).map(|_| Code::generate().digits().to_owned()).collect();
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
        for m in ["Ihr Code: 123456", "code 123-456 thanks", "123 456", "x0123456789", "987.654", "Code: 123\u{2013}456",
            "123\u{2014}456", "123\u{2011}456", "123\u{2212}456", "123\u{2007}456", "123\t456"] {
            assert!(message_contains_code(m), "{m:?}");
        }
        for m in ["Termin am 12.03.2025 um 14:30", "Bitte 2 Tabletten", "Tel 044 12 34", "Rechnung 2024-001", ""] {
            assert!(!message_contains_code(m), "{m:?}");
        }
    }
}
