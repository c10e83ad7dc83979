//! Who a share goes to. Phone numbers and email addresses are personal data: they never reach a
//! log line (their `Debug` is redacted) and are shown to the patient only masked.

use super::Invalid;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A mobile number in E.164 form (`+41791234567`), checked against real numbering plans.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::parse_number(raw).map(|(phone, _)| phone)
    }

    /// A number the code can go to by SMS: a mobile one, or one its numbering plan cannot tell
    /// from a landline (North America), a VoIP or personal number. A landline, toll-free,
    /// premium-rate, shared-cost or service number is refused now: an SMS there never arrives,
    /// or is billed as a premium message (SMS pumping), and the practice should hear it at once,
    /// not from a delivery report later.
    pub fn parse_for_sms(raw: &str) -> Result<Self, Invalid> {
        use rlibphonenumber::PhoneNumberType as Type;
        let (phone, kind) = Self::parse_number(raw)?;
        match kind {
            Type::Mobile | Type::FixedLineOrMobile | Type::VoIP | Type::PersonalNumber | Type::Pager | Type::Unknown => Ok(phone),
            Type::FixedLine => Err(Invalid::new("phone is a landline number: the code goes by SMS, so give a mobile number")),
            _ => Err(Invalid::new("phone is a toll-free, premium-rate, shared-cost or service number, which SMS cannot reach")),
        }
    }

    fn parse_number(raw: &str) -> Result<(Self, rlibphonenumber::PhoneNumberType), Invalid> {
        let raw = raw.trim();
        if !raw.starts_with('+') {
            return Err(Invalid::new("phone must be in international E.164 form, e.g. +41791234567"));
        }
        let number: rlibphonenumber::PhoneNumber =
            raw.parse().map_err(|_| Invalid::new("phone is not a phone number in E.164 form"))?;
        if !number.is_valid() {
            return Err(Invalid::new("phone is not a valid number for its country"));
        }
        let e164 = number.format_as(rlibphonenumber::PhoneNumberFormat::E164).to_string();
        Ok((Self(e164), number.get_type()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the page shows of the number a code went to: the country code and the last two
    /// digits, e.g. `+41 ••• ••• •• 67`, enough for a patient to recognise their own phone.
    pub fn masked(&self) -> String {
        let digits = &self.0[1..];
        let cc_len = country_code_len(digits).unwrap_or(2).min(digits.len());
        let tail = &digits[digits.len().saturating_sub(2)..];
        let hidden = digits.len().saturating_sub(cc_len + 2);
        format!("+{} {}{}", &digits[..cc_len], "•".repeat(hidden), tail)
    }
}

/// The country calling codes of libphonenumber's metadata (the `rlibphonenumber` crate's, which
/// a test checks this against). Shown in a masked number; a copy of their list, so the functions
/// that show one (the page's public info) do not link and load the whole numbering metadata
/// and its regexes to find the first one to three digits.
const COUNTRY_CODES: &[u16] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63,
    64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211, 212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228,
    229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298, 299, 350, 351, 352, 353, 354,
    355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377, 378, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423,
    500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675,
    676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808, 850, 852, 853, 855, 856, 870, 878,
    880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964, 965, 966, 967, 968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 992,
    993, 994, 995, 996, 998,
];

/// How many of the leading digits of an E.164 number are its country calling code. The codes
/// are a prefix code (ITU-T E.164), so at most one of the first one, two or three digits is one.
fn country_code_len(digits: &str) -> Option<usize> {
    (1..=3).find(|&n| {
        digits.get(..n).and_then(|d| d.parse().ok()).is_some_and(|code: u16| COUNTRY_CODES.binary_search(&code).is_ok())
    })
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(<redacted>)")
    }
}

/// An email address, syntax checked (RFC 5321/5322 as the `email_address` crate reads them).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        if raw.len() > 254 {
            return Err(Invalid::new("email is longer than 254 characters"));
        }
        let parsed: email_address::EmailAddress = raw.parse().map_err(|_| Invalid::new("email is not a valid address"))?;
        // A display-name form ("Anna <a@b>") is legal RFC 5322 but not an address to send to.
        if parsed.email() != raw || ascii_domain(parsed.domain()).is_none() {
            return Err(Invalid::new("email is not a plain address like anna@example.ch"));
        }
        // Mail providers (SES among them) do not speak SMTPUTF8: an internationalised domain
        // travels as Punycode, but the part before the @ has no ASCII form to travel as.
        if !parsed.local_part().is_ascii() {
            return Err(Invalid::new("email has letters before the @ that mail cannot carry: only ASCII there"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as mail carries it: the domain in its ASCII (Punycode) form, so
    /// `anna@müller.ch` goes out as `anna@xn--mller-kva.ch`. What the practice gave is kept
    /// for everything else.
    pub fn deliverable(&self) -> String {
        match self.0.rsplit_once('@') {
            Some((local, domain)) if !domain.is_ascii() => match ascii_domain(domain) {
                Some(domain) => format!("{local}@{domain}"),
                None => self.0.clone(),
            },
            _ => self.0.clone(),
        }
    }
}

/// A domain mail can be sent to, in ASCII: labels of letters (any script, as Punycode), digits
/// and inner hyphens, at least two of them. RFC 5322 allows more in a domain (`b@e}ample.org`),
/// which no provider delivers to; refusing it now beats a `notification_failed` later.
fn ascii_domain(domain: &str) -> Option<String> {
    let ascii = idna::domain_to_ascii_cow(domain.as_bytes(), idna::AsciiDenyList::STD3).ok()?;
    let labels_ok = ascii.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    (labels_ok && ascii.contains('.')).then(|| ascii.into_owned())
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

/// The four languages of email, SMS and page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    De,
    Fr,
    It,
    En,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::De, Language::Fr, Language::It, Language::En];

    /// Accepts `de`, `DE`, and tags with a region such as `de-CH` or `fr_CH`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let primary = raw.trim().split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        match primary.as_str() {
            "de" => Ok(Self::De),
            "fr" => Ok(Self::Fr),
            "it" => Ok(Self::It),
            "en" => Ok(Self::En),
            _ => Err(Invalid::new("language must be one of de, fr, it, en")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::De => "de",
            Self::Fr => "fr",
            Self::It => "it",
            Self::En => "en",
        }
    }
}

/// A recipient's or practice's display name: trimmed, no control characters, 1..=200 chars.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid::new("name must not be empty"));
        }
        if name.chars().count() > 200 {
            return Err(Invalid::new("name is longer than 200 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid::new("name must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonName(<redacted>)")
    }
}

/// A date of birth used as the shared secret (`auth.method = date_of_birth`).
/// Patients type it as `1980-02-29` (the page's date field) or `29.02.1980` (as printed in CH).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DateOfBirth(NaiveDate);

impl DateOfBirth {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(raw, "%d.%m.%Y"))
            .map_err(|_| Invalid::new("date_of_birth must be a date like 1980-02-29"))?;
        if date.year_ce().1 < 1900 || date > chrono::Utc::now().date_naive() {
            return Err(Invalid::new("date_of_birth is not a plausible date of birth"));
        }
        Ok(Self(date))
    }

    /// The canonical form that is hashed: `YYYY-MM-DD`.
    pub fn canonical(&self) -> String {
        self.0.format("%Y-%m-%d").to_string()
    }
}

impl fmt::Debug for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DateOfBirth(<redacted>)")
    }
}

use chrono::Datelike;

/// An insurance number used as the shared secret (`auth.method = insurance_number`), e.g. the
/// Swiss AHV number `756.1234.5678.97`. Dots, spaces and dashes are ignored; letters are folded
/// to upper case, so the patient may type it as printed on the card.
#[derive(Clone, PartialEq, Eq)]
pub struct InsuranceNumber(String);

impl InsuranceNumber {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let canonical: String =
            raw.chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '/' | '\u{a0}')).map(|c| c.to_ascii_uppercase()).collect();
        if canonical.len() < 4 || canonical.len() > 32 || !canonical.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Invalid::new("insurance_number must be 4 to 32 letters or digits"));
        }
        Ok(Self(canonical))
    }

    pub fn canonical(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InsuranceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InsuranceNumber(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_must_be_real_e164_numbers() {
        assert_eq!(Phone::parse("+41791234567").unwrap().as_str(), "+41791234567");
        assert_eq!(Phone::parse(" +41 79 123 45 67 ").unwrap().as_str(), "+41791234567");
        for bad in ["0791234567", "+41", "+4179123456789012", "hello", "+99912345678", ""] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_go_only_to_numbers_an_sms_can_reach() {
        for mobile in ["+41791234567", "+41 76 123 45 67", "+491701234567", "+447911123456", "+12015550123"] {
            assert!(Phone::parse_for_sms(mobile).is_ok(), "{mobile}");
        }
        for (number, why) in [
            ("+41441234567", "landline"),  // Zürich
            ("+493012345678", "landline"), // Berlin
            ("+41800123456", "toll-free"),
            ("+41900123456", "premium-rate"),
            ("+41840123456", "shared-cost"),
        ] {
            let refused = Phone::parse_for_sms(number).expect_err(number);
            assert!(refused.0.contains(why), "{number}: {}", refused.0);
            assert!(Phone::parse(number).is_ok(), "{number} is still a phone number for the other methods");
        }
    }

    proptest::proptest! {
        /// Whatever follows the `+`, parsing answers without panicking, and a number it takes
        /// is plain E.164 that parses to itself, with a country code the mask knows.
        #[test]
        fn any_phone_input_is_taken_as_e164_or_refused(
            rest in "[0-9 ()./x;=٠-٩a-z+-]{0,24}|[0-9]{6,15}",
        ) {
            if let Ok(phone) = Phone::parse(&format!("+{rest}")) {
                let digits = &phone.as_str()[1..];
                proptest::prop_assert!(phone.as_str().starts_with('+'));
                proptest::prop_assert!((2..=15).contains(&digits.len()), "{digits}");
                proptest::prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{digits}");
                proptest::prop_assert_eq!(Phone::parse(phone.as_str()).ok(), Some(phone.clone()));
                proptest::prop_assert!(country_code_len(digits).is_some(), "{digits}");
            }
        }

        /// Any text at all, in any script: an answer, never a panic.
        #[test]
        fn any_text_is_refused_or_a_number(raw in "\\PC{0,60}") {
            for raw in [raw.clone(), format!("+{raw}")] {
                if let Ok(phone) = Phone::parse(&raw) {
                    proptest::prop_assert!(phone.as_str()[1..].bytes().all(|b| b.is_ascii_digit()));
                }
            }
        }

        /// Spaces, dashes, dots and brackets a practice's software may keep in a number do
        /// not change which number it is.
        #[test]
        fn separators_do_not_change_a_number(seps in proptest::collection::vec("[ .()-]?", 11)) {
            let digits = "41791234567";
            let written: String = digits.chars().zip(&seps).map(|(d, s)| format!("{d}{s}")).collect();
            proptest::prop_assert_eq!(
                Phone::parse(&format!("+{written}")).map(|p| p.as_str().to_owned()).ok(),
                Some("+41791234567".to_owned())
            );
        }
    }

    #[test]
    fn country_codes_are_libphonenumbers() {
        let util = &*rlibphonenumber::PHONE_NUMBER_UTIL;
        let mut known: Vec<u16> = util
            .get_supported_calling_codes()
            .chain(util.get_supported_global_network_calling_codes())
            .map(|code| u16::try_from(code).unwrap())
            .collect();
        known.sort_unstable();
        known.dedup();
        assert_eq!(COUNTRY_CODES, known.as_slice(), "COUNTRY_CODES against libphonenumber's metadata");
        for code in known {
            let digits = format!("{code}987654321");
            assert_eq!(country_code_len(&digits), Some(code.to_string().len()), "+{digits}");
        }
        assert_eq!(country_code_len("28123456"), None, "+28 is not assigned");
    }

    #[test]
    fn masked_phone_shows_country_and_last_two_digits() {
        let m = Phone::parse("+41791234567").unwrap().masked();
        assert!(m.starts_with("+41 "), "{m}");
        assert!(m.ends_with("67"), "{m}");
        assert!(!m.contains("79123"), "{m}");
        assert!(Phone::parse("+420601123456").unwrap().masked().starts_with("+420 •"));
        assert!(Phone::parse("+79161234567").unwrap().masked().starts_with("+7 •"));
    }

    #[test]
    fn emails_are_plain_addresses() {
        for good in ["anna@example.ch", "a.b+praxis@mail.example-praxis.ch"] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "anna",
            "anna@",
            "Anna <anna@example.ch>",
            "anna@localhost",
            "a b@example.ch",
            "",
            "b@e}ample.org",
            "b@example..org",
            "b@-example.org",
            "b@example.org-",
            "b@[10.0.0.1]",
            "müller@example.ch",
            "b@exa mple.ch",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internationalised_domains_are_sent_as_punycode() {
        let email = Email::parse("anna@müller.ch").expect("an IDN domain is an address");
        assert_eq!(email.as_str(), "anna@müller.ch");
        assert_eq!(email.deliverable(), "anna@xn--mller-kva.ch");
        assert_eq!(Email::parse("Anna.B@Example.CH").expect("ascii").deliverable(), "Anna.B@Example.CH");
    }

    #[test]
    fn languages_accept_regions() {
        assert_eq!(Language::parse("de-CH").unwrap(), Language::De);
        assert_eq!(Language::parse("FR").unwrap(), Language::Fr);
        assert!(Language::parse("es").is_err());
    }

    #[test]
    fn debug_redacts_personal_data() {
        let p = Phone::parse("+41791234567").unwrap();
        let e = Email::parse("anna@example.ch").unwrap();
        assert!(!format!("{p:?}{e:?}").contains("4179") && !format!("{e:?}").contains("anna"));
    }

    #[test]
    fn secrets_are_canonicalised() {
        assert_eq!(DateOfBirth::parse("29.02.1980").unwrap().canonical(), "1980-02-29");
        assert!(DateOfBirth::parse("1981-02-29").is_err());
        assert_eq!(InsuranceNumber::parse("756.1234.5678.97").unwrap().canonical(), "7561234567897");
    }
}
