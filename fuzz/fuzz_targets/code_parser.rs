//! The code a patient types (`Code::parse`, which `POST /v1/public/shares/{id}/verify` runs on
//! the `code` field), and the check that keeps code-shaped text out of a practice's message
//! (`message_contains_code`), on any text.
//!
//! Neither may panic. A parsed code is six ASCII digits and reads back from both of its written
//! forms; and whatever the parser accepts as a code, the message check must spot too (else a
//! code could travel by email).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpost::domain::{Code, message_contains_code};

fuzz_target!(|input: &str| {
    let in_message = message_contains_code(input);
    if let Ok(code) = Code::parse(input) {
        let digits = code.digits();
        assert!(digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()), "{digits:?}");
        assert_eq!(Code::parse(digits).as_ref(), Ok(&code));
        assert_eq!(Code::parse(&code.grouped()).as_ref(), Ok(&code));
        assert!(in_message, "{input:?} parses as a code but passes as a message");
    }
});
