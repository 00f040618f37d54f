//! Incremental parsing of a JSON array whose body arrives in chunks: each element is
//! parsed as soon as its last byte arrives, so a listing keeps the parsed tokens and at
//! most one partial element, never the whole body. For a tenant of 100,000 tokens the body
//! is about 40 MB.
//!
//! The splitter tracks only what it needs to find the end of an element: string literals
//! (with their escapes) and the nesting depth of objects and arrays. Each element is then
//! parsed in full by serde_json, so an invalid element, trailing characters or a body
//! that ends early fail the listing just as parsing the whole body at once would. Error
//! messages name the element and serde_json's message for it.

use serde::de::DeserializeOwned;

/// Position of the splitter in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Before the opening `[`.
    Start,
    /// After `[` or a `,`, before the next element. `first` is true right after `[`,
    /// where `]` may close an empty array.
    BeforeElement { first: bool },
    /// Inside an element.
    InElement,
    /// After the closing `]`.
    End,
}

/// Parses the elements of one JSON array from consecutive chunks of its text, as `T`, and
/// keeps each one as `convert` turns it into a `U`.
pub(crate) struct ArrayParser<T, U> {
    position: Position,
    /// Nesting depth of objects and arrays inside the current element.
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The bytes of the current element that arrived in earlier chunks.
    partial: Vec<u8>,
    convert: fn(T) -> U,
    items: Vec<U>,
    /// Bytes fed so far, for error messages.
    offset: usize,
}

impl<T: DeserializeOwned, U> ArrayParser<T, U> {
    pub fn new(convert: fn(T) -> U) -> Self {
        ArrayParser {
            position: Position::Start,
            depth: 0,
            in_string: false,
            escaped: false,
            partial: Vec::new(),
            convert,
            items: Vec::new(),
            offset: 0,
        }
    }

    /// Consumes the next chunk of the body, parsing every element that ends in it.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        // Start of the current element within this chunk; 0 when it began in an earlier one.
        let mut element_start = 0;
        let mut index = 0;
        while index < chunk.len() {
            let byte = chunk[index];
            match self.position {
                Position::Start => {
                    if byte == b'[' {
                        self.position = Position::BeforeElement { first: true };
                    } else if !byte.is_ascii_whitespace() {
                        return Err(self.unexpected(byte, index, "`[`"));
                    }
                }
                Position::BeforeElement { first } => {
                    if byte == b']' && first {
                        self.position = Position::End;
                    } else if !byte.is_ascii_whitespace() {
                        self.position = Position::InElement;
                        element_start = index;
                        // Look at this byte again as the element's first.
                        continue;
                    }
                }
                Position::InElement if self.in_string => {
                    if self.escaped {
                        // The byte after a backslash, maybe a quote, never ends the string.
                        self.escaped = false;
                    } else {
                        // Skip to the next quote or backslash: string contents are most of
                        // the text.
                        let Some(found) = memchr::memchr2(b'"', b'\\', &chunk[index..]) else {
                            break;
                        };
                        index += found;
                        if chunk[index] == b'\\' {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                        }
                    }
                }
                Position::InElement => {
                    // Skip to the next byte that changes the state.
                    let rest = &chunk[index..];
                    let Some(found) = rest
                        .iter()
                        .position(|b| matches!(b, b'"' | b'{' | b'[' | b'}' | b']' | b','))
                    else {
                        break;
                    };
                    index += found;
                    match chunk[index] {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => self.depth += 1,
                        b'}' | b']' if self.depth > 0 => self.depth -= 1,
                        separator @ (b',' | b']') if self.depth == 0 => {
                            self.finish_element(&chunk[element_start..index])?;
                            self.position = if separator == b',' {
                                Position::BeforeElement { first: false }
                            } else {
                                Position::End
                            };
                        }
                        _ => {}
                    }
                }
                Position::End => {
                    if !byte.is_ascii_whitespace() {
                        return Err(self.unexpected(byte, index, "the end of the body"));
                    }
                }
            }
            index += 1;
        }
        if self.position == Position::InElement {
            self.partial.extend_from_slice(&chunk[element_start..]);
        }
        self.offset += chunk.len();
        Ok(())
    }

    /// Checks that the array was closed and returns its elements.
    pub fn finish(self) -> Result<Vec<U>, String> {
        match self.position {
            Position::End => Ok(self.items),
            _ => Err(format!(
                "the body ended after {} bytes, inside the array",
                self.offset
            )),
        }
    }

    /// Parses the element made of the stored partial bytes and `tail`.
    fn finish_element(&mut self, tail: &[u8]) -> Result<(), String> {
        let parsed: Result<T, _> = if self.partial.is_empty() {
            serde_json::from_slice(tail)
        } else {
            self.partial.extend_from_slice(tail);
            let parsed = serde_json::from_slice(&self.partial);
            self.partial.clear();
            parsed
        };
        match parsed {
            Ok(item) => {
                self.items.push((self.convert)(item));
                Ok(())
            }
            Err(error) => Err(format!("element {}: {error}", self.items.len())),
        }
    }

    fn unexpected(&self, byte: u8, index: usize, expected: &str) -> String {
        format!(
            "expected {expected} at byte {}, found {:?}",
            self.offset + index,
            char::from(byte)
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Parses `text` fed in chunks of `size` bytes.
    fn parse_in_chunks(text: &str, size: usize) -> Result<Vec<Value>, String> {
        let mut parser = ArrayParser::new(|value: Value| value);
        for chunk in text.as_bytes().chunks(size) {
            parser.feed(chunk)?;
        }
        parser.finish()
    }

    const TRICKY: &str = r#" [ {"a": "x,]}\"\\", "b": [1, {"c": "]"}]}, 2 , "s\\" ,
        null, [ ], {} ] "#;

    #[test]
    fn array_matches_whole_parse_at_every_chunk_size() {
        let expected: Vec<Value> = serde_json::from_str(TRICKY).unwrap();
        for size in 1..=TRICKY.len() {
            assert_eq!(
                parse_in_chunks(TRICKY, size).as_ref(),
                Ok(&expected),
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn array_empty_and_whitespace() {
        assert_eq!(parse_in_chunks("[]", 1), Ok(vec![]));
        assert_eq!(parse_in_chunks(" \n[ \n] \n", 3), Ok(vec![]));
    }

    #[test]
    fn array_rejects_other_documents() {
        for text in [
            r#"{"items":[]}"#,
            "",
            "[",
            "[1,",
            "[1,]",
            "[,1]",
            "[1] x",
            "[1 2]",
        ] {
            for size in [1, 2, 100] {
                assert!(
                    parse_in_chunks(text, size).is_err(),
                    "{text:?} in chunks of {size}"
                );
            }
        }
    }

    #[test]
    fn array_converts_each_element() {
        let mut parser = ArrayParser::new(|value: Value| value["id"].as_u64());
        parser.feed(br#"[{"id":1,"x":"y"},{"id":2}]"#).unwrap();
        assert_eq!(parser.finish(), Ok(vec![Some(1), Some(2)]));
    }

    #[test]
    fn array_error_names_element() {
        let error = parse_in_chunks(r#"[{"id":1},{"id":}]"#, 4).unwrap_err();
        assert!(error.starts_with("element 1:"), "{error}");
    }
}
