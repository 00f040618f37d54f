//! The token entries of the JSON report, written by hand.
//!
//! A report of 100,000 tokens is about 60 MB. Writing its entries by hand instead of
//! through serde's serializer took the CPU time of writing it from about 93 ms to 57 ms.
//! Each entry is the line that serde_json writes for `TokenView` with the report's layout:
//! members in alphabetical order, no spaces, strings escaped as serde_json escapes them.
//! The tests compare the two byte for byte.

use std::fmt::Write as _;

use crate::audit::{Run, TokenResult};

use super::Instant;
use super::reason::Reason;
use crate::json_text::special_byte;

/// Appends the entry of `result` to `out` as one line of JSON, without a line break.
pub(super) fn push_token(run: &Run, result: TokenResult<'_>, out: &mut String) {
    let token = &result.token;
    out.push_str("{\"access_token_validity_seconds\":");
    push_number(out, token.access_token_validity_seconds());
    out.push_str(",\"created\":");
    push_instant(out, Some(Instant(token.created)));
    out.push_str(",\"error\":");
    push_optional_string(out, result.error.as_deref());

    out.push_str(",\"exemption\":");
    match &result.exemption {
        Some(exemption) => {
            out.push_str("{\"expired\":");
            out.push_str(if exemption.expired { "true" } else { "false" });
            out.push_str(",\"reason\":");
            push_string(out, &exemption.reason);
            out.push_str(",\"selector\":");
            push_string(out, &exemption.selector);
            out.push_str(",\"until\":");
            push_instant(out, exemption.until.map(Instant));
            out.push('}');
        }
        None => out.push_str("null"),
    }

    out.push_str(",\"expiration_date\":");
    push_instant(out, token.expiration_date.map(Instant));
    out.push_str(",\"first_flagged\":");
    push_instant(out, result.first_flagged.map(Instant));
    out.push_str(",\"grace_until\":");
    push_instant(out, result.grace_until.map(Instant));
    out.push_str(",\"id\":");
    push_string(out, &token.id);
    out.push_str(",\"last_used\":");
    push_instant(out, token.last_used.map(Instant));
    out.push_str(",\"managed\":");
    out.push_str(if token.managed { "true" } else { "false" });
    out.push_str(",\"name\":");
    push_string(out, &token.name);
    out.push_str(",\"outcome\":\"");
    out.push_str(result.outcome.as_str());
    out.push_str("\",\"owner\":{\"id\":");
    push_optional_string(out, token.owner.id.as_deref());
    out.push_str(",\"name\":");
    push_optional_string(out, token.owner.name.as_deref());

    out.push_str("},\"protections\":[");
    for (index, protection) in result.protections.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(protection.as_str());
        out.push('"');
    }
    out.push(']');

    out.push_str(",\"reason\":");
    out.push('"');
    write!(Escaped(out), "{}", Reason { run, result }).expect("writing to a String succeeds");
    out.push('"');

    out.push_str(",\"rules\":");
    push_strings(out, &result.rules);
    out.push_str(",\"scope\":");
    match &token.scope {
        Some(scopes) => push_strings(out, scopes),
        None => out.push_str("null"),
    }
    out.push_str(",\"verdict\":\"");
    out.push_str(result.verdict.as_str());
    out.push_str("\"}");
}

pub(crate) fn push_number(out: &mut String, value: u32) {
    write!(out, "{value}").expect("writing to a String succeeds");
}

pub(crate) fn push_instant(out: &mut String, value: Option<Instant>) {
    match value {
        Some(instant) => {
            out.push('"');
            instant.push_onto(out);
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

pub(crate) fn push_optional_string(out: &mut String, value: Option<&str>) {
    match value {
        Some(text) => push_string(out, text),
        None => out.push_str("null"),
    }
}

pub(crate) fn push_strings(out: &mut String, values: &[String]) {
    out.push('[');
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_string(out, value);
    }
    out.push(']');
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it: quotes, backslashes
/// and control characters, with the short forms where JSON has one.
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.push('"');
    push_escaped(out, text);
    out.push('"');
}

/// Writer that appends what it receives to a String as the content of a JSON string, so a
/// `Display` value is escaped as it is written, without a copy.
struct Escaped<'a>(&'a mut String);

impl std::fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        push_escaped(self.0, text);
        Ok(())
    }
}

/// Appends `text` escaped as the content of a JSON string, as [`push_string`] does. The
/// runs between the bytes to escape are copied whole.
fn push_escaped(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = special_byte(rest.as_bytes()) {
        // The byte at `at` is ASCII, so both `at` and `at + 1` are character boundaries.
        out.push_str(&rest[..at]);
        match rest.as_bytes()[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            control => {
                write!(out, "\\u{control:04x}").expect("writing to a String succeeds");
            }
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, text);
        out
    }

    #[test]
    fn string_escapes_every_control_character() {
        for byte in 0u8..0x80 {
            let text = char::from(byte).to_string();
            assert_eq!(
                escaped(&text),
                serde_json::to_string(&text).unwrap(),
                "byte {byte:#04x}"
            );
        }
    }

    proptest! {
        #[test]
        fn string_matches_serde_json(text in any::<String>()) {
            prop_assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn special_characters_match_serde_json(text in "[a-z\"\\\\\u{0}-\u{1f}é😀]{0,40}") {
            prop_assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap());
        }
    }
}
