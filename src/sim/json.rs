//! Byte-level helpers over JSON text that serde_json has already validated: split an array
//! into its elements, split an object into its members, drop insignificant whitespace.
//!
//! They exist so that the simulated tenant can keep every token as the exact text it was
//! loaded from (member order and unknown fields included) without the `raw_value` feature
//! of serde_json, and build list bodies by concatenation. Every function here assumes valid
//! JSON: callers validate first (for example with `serde_json::from_str::<IgnoredAny>`), and
//! on invalid input the functions return `None` instead of panicking.

/// Returns `text` without the whitespace between JSON tokens. Strings are copied unchanged.
pub(crate) fn compact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut run_start = 0;
    let mut i = 0;

    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i).unwrap_or(bytes.len()),
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&text[run_start..i]);
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                run_start = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[run_start..]);
    out
}

/// Splits a JSON array into the text of its elements, or returns `None` when `text` is not
/// an array.
pub(crate) fn array_elements(text: &str) -> Option<Vec<&str>> {
    let bytes = text.as_bytes();
    let mut i = skip_whitespace(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return None;
    }
    i = skip_whitespace(bytes, i + 1);

    let mut elements = Vec::new();
    if bytes.get(i) == Some(&b']') {
        return Some(elements);
    }
    loop {
        let end = value_end(bytes, i)?;
        elements.push(&text[i..end]);
        i = skip_whitespace(bytes, end);
        match bytes.get(i)? {
            b',' => i = skip_whitespace(bytes, i + 1),
            b']' => return Some(elements),
            _ => return None,
        }
    }
}

/// Splits a JSON object into `(key, value)` pairs of raw text (the key keeps its quotes), in
/// document order, or returns `None` when `text` is not an object.
pub(crate) fn object_members(text: &str) -> Option<Vec<(&str, &str)>> {
    let bytes = text.as_bytes();
    let mut i = skip_whitespace(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_whitespace(bytes, i + 1);

    let mut members = Vec::new();
    if bytes.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(bytes, i)?;
        let key = &text[i..key_end];
        i = skip_whitespace(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        i = skip_whitespace(bytes, i + 1);
        let value_end = value_end(bytes, i)?;
        members.push((key, &text[i..value_end]));
        i = skip_whitespace(bytes, value_end);
        match bytes.get(i)? {
            b',' => i = skip_whitespace(bytes, i + 1),
            b'}' => return Some(members),
            _ => return None,
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Returns the offset just past the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Returns the offset just past the value that starts at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = start;
            while i < bytes.len()
                && !matches!(bytes[i], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
            {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_string_whitespace() {
        let text = "{ \"a b\" : [ 1 , \"x \\\" y\" ],\n\t\"c\": null }";
        assert_eq!(compact(text), r#"{"a b":[1,"x \" y"],"c":null}"#);
    }

    #[test]
    fn array_elements_split_nested_values() {
        let text = r#" [ {"a":[1,{"b":"]"}]} , "s,t" , 3.5e1, null, [] ] "#;
        assert_eq!(
            array_elements(text).unwrap(),
            vec![r#"{"a":[1,{"b":"]"}]}"#, r#""s,t""#, "3.5e1", "null", "[]"]
        );
    }

    #[test]
    fn array_elements_of_empty_array() {
        assert_eq!(array_elements(" [ ] ").unwrap(), Vec::<&str>::new());
    }

    #[test]
    fn array_elements_reject_non_array() {
        assert_eq!(array_elements(r#"{"a":1}"#), None);
        assert_eq!(array_elements("[1,"), None);
    }

    #[test]
    fn object_members_keep_order_and_raw_values() {
        let text = r#"{"z":1, "a\"b" : {"x":[1,2]}, "m":"v}"}"#;
        assert_eq!(
            object_members(text).unwrap(),
            vec![
                (r#""z""#, "1"),
                (r#""a\"b""#, r#"{"x":[1,2]}"#),
                (r#""m""#, r#""v}""#)
            ]
        );
    }

    #[test]
    fn object_members_reject_non_object() {
        assert_eq!(object_members("[1]"), None);
        assert_eq!(object_members(r#"{"a" 1}"#), None);
    }
}
