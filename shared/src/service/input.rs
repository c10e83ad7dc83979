//! Request bodies, parsed at the edge into domain types. A bad value is refused with
//! `invalid_request` naming the field as a JSON path (`documents[2].filename`).

use crate::domain::{
    AuthMethod, ContentType, DateOfBirth, Email, Filename, InsuranceNumber, Language, PersonName, Phone, Policy, Recipient,
    message_contains_code,
};
use crate::error::{Error, Result};
use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Decoded inline documents may total this much on the embedded backend (SPEC suggests 25 MB).
pub const MAX_INLINE_BYTES: u64 = 25 * 1024 * 1024;
/// … and this much on AWS, where API Gateway hands the request to Lambda in an event of at most
/// 6 MiB: 4 MiB of documents are 5.3 MiB of base64, with room for the JSON around them. A
/// bigger body never reaches Sealpost (API Gateway answers 413 itself).
pub const AWS_MAX_INLINE_BYTES: u64 = 4 * 1024 * 1024;
/// A large document (uploaded through `upload_url`) may be this big.
pub const MAX_UPLOAD_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// A share's documents may total this much on AWS: what one `send-worker` run archives within
/// Lambda's 15 minutes with room to spare (BENCHMARKS.md, section 5). The embedded backend's
/// worker has no such limit: 50 documents of [`MAX_UPLOAD_BYTES`].
pub const AWS_MAX_SHARE_BYTES: u64 = 20 * 1024 * 1024 * 1024;
pub const MAX_DOCUMENTS: usize = 50;
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Parses a JSON body; the error names the field where parsing stopped.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // serde reports a missing field at its parent; name the field itself.
        let syntax = inner.is_syntax() || inner.is_eof();
        let field = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            // Where a broken document stopped is no field of ours: name the body.
            _ if syntax => "body".to_owned(),
            Some(missing) if path == "." => missing.to_owned(),
            Some(missing) => format!("{path}.{missing}"),
            None if path == "." => "body".to_owned(),
            None => path,
        };
        let message = if syntax {
            "the body is not valid JSON".to_owned()
        } else {
            // serde's data errors name types and fields, never values: safe to show.
            message.split(" at line ").next().unwrap_or(&message).to_owned()
        };
        Error::invalid(field, message)
    })
}

/// `POST /v1/shares`: the body, parsed and checked, or the `invalid_request` naming the field
/// (also for inline documents over `max_inline`, [`MAX_INLINE_BYTES`] or
/// [`AWS_MAX_INLINE_BYTES`]). Pure, no store and no blobs, so it is fuzzed on its own (`fuzz/`,
/// target `create_body`).
pub fn parse_create_body(body: &[u8], practice_language: Language, policy: &Policy, max_inline: u64) -> Result<NewShare> {
    parse_json::<CreateShareRequest>(body)?.validate(practice_language, policy, max_inline)
}

/// `POST /v1/shares/preview`: a create body whose `documents` may be left out (the answer is
/// the same either way); what is given is checked as create checks it.
pub fn parse_preview_body(body: &[u8], practice_language: Language, policy: &Policy, max_inline: u64) -> Result<NewShare> {
    let mut request = parse_json::<CreateShareRequest>(body)?;
    let documents = request.documents.take();
    let mut new = request.validate_all_but_documents(practice_language, policy)?;
    if let Some(documents) = documents {
        new.documents = validate_documents(documents, max_inline)?;
    }
    Ok(new)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateShareRequest {
    pub recipient: RecipientIn,
    #[serde(default)]
    pub auth: AuthIn,
    pub expires_in_days: Option<u32>,
    pub message: Option<String>,
    /// Whether the patient may reply (default: the practice's policy).
    pub allow_reply: Option<bool>,
    /// Required by create ([`CreateShareRequest::validate`]), optional in a preview.
    pub documents: Option<Vec<DocumentIn>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientIn {
    pub email: String,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub language: Option<String>,
    pub date_of_birth: Option<String>,
    pub insurance_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthIn {
    pub method: Option<AuthMethod>,
    pub self_service: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    pub filename: String,
    pub content_type: String,
    pub content_base64: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

/// A document's bytes: given inline, or to be uploaded.
#[derive(Debug)]
pub enum Content {
    Inline(Vec<u8>),
    Upload { size: u64, sha256: String },
}

impl Content {
    pub fn size(&self) -> u64 {
        match self {
            Content::Inline(bytes) => bytes.len() as u64,
            Content::Upload { size, .. } => *size,
        }
    }
}

#[derive(Debug)]
pub struct NewDocument {
    pub filename: Filename,
    pub content_type: ContentType,
    pub content: Content,
}

/// The secret the patient will answer with, in canonical form (hashed before storing).
#[derive(Debug)]
pub enum KnownSecret {
    DateOfBirth(DateOfBirth),
    InsuranceNumber(InsuranceNumber),
}

/// A create request that passed every check.
#[derive(Debug)]
pub struct NewShare {
    pub recipient: Recipient,
    pub auth: AuthMethod,
    pub self_service: bool,
    pub allow_reply: Option<bool>,
    pub known_secret: Option<KnownSecret>,
    pub expires_in_days: u32,
    pub message: Option<String>,
    pub documents: Vec<NewDocument>,
}

fn field<T>(name: &str, r: std::result::Result<T, crate::domain::Invalid>) -> Result<T> {
    r.map_err(|e| Error::invalid(name, e.0))
}

impl CreateShareRequest {
    /// `max_inline`: what the inline documents may total on this backend ([`MAX_INLINE_BYTES`],
    /// [`AWS_MAX_INLINE_BYTES`]).
    pub fn validate(mut self, practice_language: Language, policy: &Policy, max_inline: u64) -> Result<NewShare> {
        let documents = self.documents.take().ok_or_else(|| Error::invalid("documents", "missing field `documents`"))?;
        let mut new = self.validate_all_but_documents(practice_language, policy)?;
        new.documents = validate_documents(documents, max_inline)?;
        Ok(new)
    }

    /// Everything but the documents, which the caller checks ([`validate_documents`]), in the
    /// order create has always checked them: recipient, auth, expiry, message.
    fn validate_all_but_documents(self, practice_language: Language, policy: &Policy) -> Result<NewShare> {
        let r = self.recipient;
        let auth = self.auth.method.unwrap_or_default();
        let email = field("recipient.email", Email::parse(&r.email))?;
        let phone = match r.phone.as_deref() {
            Some(p) if auth == AuthMethod::Sms => Some(field("recipient.phone", Phone::parse_for_sms(p))?),
            Some(p) => Some(field("recipient.phone", Phone::parse(p))?),
            None if auth == AuthMethod::Sms => {
                return Err(Error::invalid("recipient.phone", "phone is required when auth.method is sms"));
            }
            None => None,
        };
        let name = r.name.as_deref().map(|n| field("recipient.name", PersonName::parse(n))).transpose()?;
        let language = match r.language.as_deref() {
            Some(l) => field("recipient.language", Language::parse(l))?,
            None => practice_language,
        };
        let known_secret = match auth {
            AuthMethod::DateOfBirth => {
                let raw = r
                    .date_of_birth
                    .as_deref()
                    .ok_or_else(|| Error::invalid("recipient.date_of_birth", "date_of_birth is required for this auth method"))?;
                Some(KnownSecret::DateOfBirth(field("recipient.date_of_birth", DateOfBirth::parse(raw))?))
            }
            AuthMethod::InsuranceNumber => {
                let raw = r.insurance_number.as_deref().ok_or_else(|| {
                    Error::invalid("recipient.insurance_number", "insurance_number is required for this auth method")
                })?;
                Some(KnownSecret::InsuranceNumber(field("recipient.insurance_number", InsuranceNumber::parse(raw))?))
            }
            AuthMethod::Sms | AuthMethod::Manual => None,
        };
        let expires_in_days = self.expires_in_days.unwrap_or(policy.default_link_days_for(auth));
        if !(1..=policy.max_link_days).contains(&expires_in_days) {
            return Err(Error::invalid(
                "expires_in_days",
                format!("expires_in_days must be between 1 and {}", policy.max_link_days),
            ));
        }
        let message = self.message.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty());
        if let Some(m) = &message {
            if m.chars().count() > MAX_MESSAGE_CHARS {
                return Err(Error::invalid("message", format!("message is longer than {MAX_MESSAGE_CHARS} characters")));
            }
            if m.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
                return Err(Error::invalid("message", "message must not contain control characters"));
            }
            if message_contains_code(m) {
                return Err(Error::invalid(
                    "message",
                    "message must not contain anything shaped like a code (six digits, also with spaces, dashes, dots or slashes between them); codes never travel by email",
                ));
            }
        }
        Ok(NewShare {
            recipient: Recipient { email, phone, name, language },
            auth,
            self_service: self.auth.self_service.unwrap_or(true),
            allow_reply: self.allow_reply,
            known_secret,
            expires_in_days,
            message,
            documents: Vec::new(),
        })
    }
}

fn validate_documents(docs: Vec<DocumentIn>, max_inline: u64) -> Result<Vec<NewDocument>> {
    if docs.is_empty() || docs.len() > MAX_DOCUMENTS {
        return Err(Error::invalid("documents", format!("a share holds 1 to {MAX_DOCUMENTS} documents")));
    }
    let mut inline_total = 0u64;
    docs.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let at = |f: &str| format!("documents[{i}].{f}");
            let filename = field(&at("filename"), Filename::parse(&d.filename))?;
            let content_type = field(&at("content_type"), ContentType::parse(&d.content_type))?;
            let content = match (d.content_base64, d.size, d.sha256) {
                (Some(b64), None, None) => {
                    let bytes = decode_base64(&b64)
                        .ok_or_else(|| Error::invalid(at("content_base64"), "content_base64 is not valid base64"))?;
                    if bytes.is_empty() {
                        return Err(Error::invalid(at("content_base64"), "a document must not be empty"));
                    }
                    inline_total += bytes.len() as u64;
                    if inline_total > max_inline {
                        return Err(Error::invalid(
                            "documents",
                            format!(
                                "inline documents may total {} MiB here; give larger ones as size and sha256 and \
                                 upload them to their upload_url",
                                max_inline / (1024 * 1024)
                            ),
                        ));
                    }
                    Content::Inline(bytes)
                }
                (None, Some(size), Some(sha256)) => {
                    if size == 0 || size > MAX_UPLOAD_BYTES {
                        return Err(Error::invalid(at("size"), format!("size must be 1 to {MAX_UPLOAD_BYTES} bytes")));
                    }
                    let sha = sha256.trim().to_ascii_lowercase();
                    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(Error::invalid(at("sha256"), "sha256 must be 64 hex digits"));
                    }
                    Content::Upload { size, sha256: sha }
                }
                _ => {
                    return Err(Error::invalid(
                        format!("documents[{i}]"),
                        "give either content_base64, or size and sha256 for an upload",
                    ));
                }
            };
            Ok(NewDocument { filename, content_type, content })
        })
        .collect()
}

/// Standard base64, padded or not, ignoring line breaks (as some encoders wrap at 76 columns).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let compact: String = s.chars().filter(|c| !matches!(c, '\r' | '\n' | ' ')).collect();
    STANDARD.decode(&compact).or_else(|_| STANDARD_NO_PAD.decode(&compact)).ok()
}

/// `POST /v1/public/shares/{id}/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    pub code: Option<String>,
    pub date_of_birth: Option<String>,
    pub insurance_number: Option<String>,
}

impl VerifyIn {
    /// The canonical answer for `auth`, as hashed at creation.
    pub fn canonical(&self, auth: AuthMethod) -> Result<String> {
        match auth {
            AuthMethod::Sms | AuthMethod::Manual => {
                let raw = self.code.as_deref().ok_or_else(|| Error::invalid("code", "code is required"))?;
                crate::domain::Code::parse(raw).map(|c| c.digits().to_owned()).map_err(|e| Error::invalid("code", e.to_string()))
            }
            AuthMethod::DateOfBirth => {
                let raw =
                    self.date_of_birth.as_deref().ok_or_else(|| Error::invalid("date_of_birth", "date_of_birth is required"))?;
                Ok(field("date_of_birth", DateOfBirth::parse(raw))?.canonical())
            }
            AuthMethod::InsuranceNumber => {
                let raw = self
                    .insurance_number
                    .as_deref()
                    .ok_or_else(|| Error::invalid("insurance_number", "insurance_number is required"))?;
                Ok(field("insurance_number", InsuranceNumber::parse(raw))?.canonical().to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<CreateShareRequest>(br#"{"recipient": {}, "documents": []}"#).unwrap_err();
        assert!(matches!(e, Error::InvalidRequest { ref field, .. } if field == "recipient.email"), "{e:?}");
        let e = parse_json::<CreateShareRequest>(br#"{"recipient": {"email": 5}, "documents": []}"#).unwrap_err();
        assert!(matches!(e, Error::InvalidRequest { ref field, .. } if field == "recipient.email"), "{e:?}");
        let e = parse_json::<CreateShareRequest>(b"not json").unwrap_err();
        assert!(matches!(e, Error::InvalidRequest { ref field, .. } if field == "body"), "{e:?}");
        let e = parse_json::<CreateShareRequest>(
            br#"{"recipient": {"email": "a@b.ch"}, "documents": [], "auth": {"method": "fax"}}"#,
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidRequest { ref field, .. } if field == "auth.method"), "{e:?}");
    }

    #[test]
    fn base64_accepts_wrapped_and_unpadded() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8").unwrap(), b"hello");
        assert!(decode_base64("***").is_none());
    }

    mod properties {
        use super::*;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        use proptest::prelude::*;

        fn wrapped(encoded: &str, width: usize, eol: &str) -> String {
            encoded.as_bytes().chunks(width).map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join(eol)
        }

        fn inline_body(content_base64: &str) -> Vec<u8> {
            serde_json::json!({
                "recipient": {"email": "anna@example.ch"},
                "auth": {"method": "manual"},
                "documents": [{"filename": "a.bin", "content_type": "application/octet-stream",
                               "content_base64": content_base64}]
            })
            .to_string()
            .into_bytes()
        }

        proptest! {
            /// Any bytes come back from base64 as practice software writes it: padded or not,
            /// wrapped at any width with any of the line ends encoders use.
            #[test]
            fn any_bytes_survive_every_accepted_encoding(
                bytes in prop::collection::vec(any::<u8>(), 0..600),
                padded in any::<bool>(),
                width in 1usize..100,
                eol in prop::sample::select(vec!["\n", "\r\n", " "]),
            ) {
                let encoded = if padded { STANDARD.encode(&bytes) } else { STANDARD_NO_PAD.encode(&bytes) };
                prop_assert_eq!(decode_base64(&encoded), Some(bytes.clone()));
                prop_assert_eq!(decode_base64(&wrapped(&encoded, width, eol)), Some(bytes));
            }

            /// Decoding is canonical: whatever is accepted is the one encoding of its bytes
            /// (no ignored trailing bits, no stray padding), so two different inputs never
            /// stand for the same document, and no input panics.
            #[test]
            fn what_decodes_is_the_canonical_encoding(input in "[A-Za-z0-9+/=\r\n -]{0,64}|\\PC{0,32}") {
                if let Some(bytes) = decode_base64(&input) {
                    let compact: String = input.chars().filter(|c| !matches!(c, '\r' | '\n' | ' ')).collect();
                    prop_assert_eq!(STANDARD_NO_PAD.encode(&bytes), compact.trim_end_matches('='));
                }
            }

            /// Through the whole intake (JSON, then validation) an inline document arrives
            /// byte for byte.
            #[test]
            fn an_inline_document_arrives_byte_for_byte(bytes in prop::collection::vec(any::<u8>(), 1..2048)) {
                let body = inline_body(&STANDARD.encode(&bytes));
                let new = parse_json::<CreateShareRequest>(&body).unwrap().validate(Language::De, &Policy::default(), MAX_INLINE_BYTES).unwrap();
                match &new.documents[0].content {
                    Content::Inline(got) => prop_assert_eq!(got, &bytes),
                    other => prop_assert!(false, "{:?}", other),
                }
            }

            /// No create body, however broken, panics: it parses, or it is an `invalid_request`
            /// (or too large) naming a field.
            #[test]
            fn no_create_body_panics(body in prop::collection::vec(any::<u8>(), 0..200), b64 in "\\PC{0,40}") {
                for body in [body, inline_body(&b64)] {
                    match parse_create_body(&body, Language::De, &Policy::default(), MAX_INLINE_BYTES) {
                        Ok(_) | Err(Error::InvalidRequest { .. }) => {}
                        Err(other) => prop_assert!(false, "{:?}", other),
                    }
                }
            }
        }
    }
}
