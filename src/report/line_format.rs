//! The layout of the JSON report: its outer levels indented like `jq` prints them, every
//! deeper value on a single line.
//!
//! A token is one line of the report, so the report reads well, greps by token and diffs
//! by line, and a tenant of 100,000 tokens writes about a third fewer bytes than with every
//! member on its own line. The output is plain JSON either way.

use std::io::{self, Write};

use serde_json::ser::{CompactFormatter, Formatter};

/// Objects and arrays nested up to this depth put each member on its own line. The report
/// object is depth 1, and deeper values are written compactly.
const INDENTED_DEPTH: usize = 2;

const INDENT: &[u8] = b"  ";

/// A serde_json formatter that indents the first [`INDENTED_DEPTH`] levels and writes
/// everything below them compactly.
#[derive(Debug, Default)]
pub struct LineFormatter {
    /// Objects and arrays open around the current position.
    depth: usize,
    /// Whether the innermost open object or array has a member yet.
    has_value: bool,
}

impl LineFormatter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns whether the innermost open object or array is indented.
    fn indented(&self) -> bool {
        self.depth <= INDENTED_DEPTH
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        let indented = self.indented();
        self.depth -= 1;
        if indented && self.has_value {
            new_line(writer, self.depth)?;
        }
        writer.write_all(bracket)
    }

    fn member<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if !first {
            writer.write_all(b",")?;
        }
        if self.indented() {
            new_line(writer, self.depth)?;
        }
        Ok(())
    }
}

fn new_line<W: ?Sized + Write>(writer: &mut W, depth: usize) -> io::Result<()> {
    writer.write_all(b"\n")?;
    for _ in 0..depth {
        writer.write_all(INDENT)?;
    }
    Ok(())
}

impl Formatter for LineFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.member(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.member(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.indented() {
            writer.write_all(b": ")
        } else {
            CompactFormatter.begin_object_value(writer)
        }
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn render(value: &Value) -> String {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, LineFormatter::new());
        serde::Serialize::serialize(value, &mut serializer).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn deep_values_stay_on_one_line() {
        let value = json!({
            "empty": [],
            "summary": {"by_outcome": {"deleted": 1, "grace": 2}, "listed": 3},
            "tokens": [
                {"id": "a", "owner": {"id": "o"}, "rules": ["r1", "r2"]},
                {"id": "b", "owner": {}, "rules": []}
            ]
        });
        let expected = r#"{
  "empty": [],
  "summary": {
    "by_outcome": {"deleted":1,"grace":2},
    "listed": 3
  },
  "tokens": [
    {"id":"a","owner":{"id":"o"},"rules":["r1","r2"]},
    {"id":"b","owner":{},"rules":[]}
  ]
}"#;
        assert_eq!(render(&value), expected);
    }

    #[test]
    fn output_parses_back_to_the_same_value() {
        let value = json!({
            "a": [[1, [2, {"b": null}]], {"c": "line\nbreak \"quoted\""}],
            "d": {"e": {"f": {"g": [true, false]}}},
            "h": {}
        });
        let parsed: Value = serde_json::from_str(&render(&value)).unwrap();
        assert_eq!(parsed, value);
        assert_eq!(render(&json!([])), "[]");
        assert_eq!(render(&json!({})), "{}");
    }
}
