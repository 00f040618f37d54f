//! Incremental parsing of a JSON array whose body arrives in chunks: each element is
//! parsed as soon as its last byte arrives, so a listing keeps the parsed tokens and the
//! bytes of at most one partial element (and of what followed it in the same chunks),
//! never the whole body. For a tenant of 100,000 tokens the body
//! is about 40 MB.
//!
//! serde_json parses each element straight from the received bytes and returns where it
//! ended, so most bytes are read once. When a chunk ends inside an element, serde_json stops
//! at the end of the input. The element's bytes then wait for the next chunk and are read
//! again from their start. Only the punctuation between elements is checked here. An
//! invalid element, trailing characters or a body that ends early fail the listing just as
//! parsing the whole body at once would, and error messages name the element and
//! serde_json's message for it.

use serde::de::DeserializeOwned;

use super::fast_element::FastElement;

/// Bytes per element assumed when room is reserved from a body's length. A listed token
/// takes about 380 bytes, so the estimate reserves more than a listing needs, and a listing
/// of smaller tokens grows past it as usual.
const ESTIMATED_ELEMENT_BYTES: u64 = 256;

/// Most elements reserved from a body's length, so that a wrong length cannot reserve
/// without bound: about 4 million.
const MAX_RESERVED_ELEMENTS: u64 = 1 << 22;

/// Position of the parser in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Before the opening `[`.
    Start,
    /// After `[` or a `,`, before the next element. `first` is true right after `[`,
    /// where `]` may close an empty array.
    BeforeElement { first: bool },
    /// After an element, before the `,` or `]` that follows it.
    AfterElement,
    /// After the closing `]`.
    End,
}

/// The result of one pass over the available bytes.
struct Pass {
    /// Bytes read to the end of the last complete element or punctuation.
    used: usize,
    /// Whether the pass stopped inside an element, waiting for its end.
    in_element: bool,
}

/// Parses the elements of one JSON array from consecutive chunks of its text, as `T`.
pub(crate) struct ArrayParser<T> {
    position: Position,
    /// Bytes received and not read yet: the start of an element cut off by a chunk's end.
    pending: Vec<u8>,
    /// Length `pending` has to reach before a cut-off element is read again. It doubles
    /// with each attempt, so an element that spans many small chunks costs linear time.
    retry_at: usize,
    items: Vec<T>,
    /// Offset in the body of the first pending byte, for error messages.
    offset: usize,
}

impl<T: DeserializeOwned + FastElement> ArrayParser<T> {
    pub fn new() -> Self {
        ArrayParser {
            position: Position::Start,
            pending: Vec::new(),
            retry_at: 0,
            items: Vec::new(),
            offset: 0,
        }
    }

    /// Reserves room for the elements of a body of `length` bytes (its `Content-Length`), so
    /// that a large listing fills one vector instead of copying it each time it doubles.
    /// Room that no element fills is never written, so it takes no resident memory, and
    /// [`ArrayParser::finish`] gives it back.
    pub fn reserve_for_body(&mut self, length: u64) {
        let elements = (length / ESTIMATED_ELEMENT_BYTES).min(MAX_RESERVED_ELEMENTS);
        self.items
            .reserve(usize::try_from(elements).unwrap_or(usize::MAX));
    }

    /// Consumes the next chunk of the body, parsing every element that ends in it.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), String> {
        if !self.pending.is_empty() {
            match self.complete_pending(chunk)? {
                Some(unread) => chunk = unread,
                None => return Ok(()),
            }
        }
        let pass = self.read(chunk, false)?;
        self.keep_rest(&chunk[pass.used..], pass.in_element);
        Ok(())
    }

    /// Completes the element cut off by the last chunk with the start of `chunk`, taking
    /// a larger piece each time it is still cut off, so that the rest of the chunk is read
    /// in place and not copied. Returns the part of `chunk` left to read, or `None` when
    /// the whole chunk went into the pending bytes.
    fn complete_pending<'c>(&mut self, chunk: &'c [u8]) -> Result<Option<&'c [u8]>, String> {
        // Length of the bytes from earlier chunks still to read.
        let mut earlier_bytes = self.pending.len();
        if earlier_bytes + chunk.len() < self.retry_at {
            self.pending.extend_from_slice(chunk);
            return Ok(None);
        }
        let mut copied = 0;
        let mut piece = earlier_bytes.max(1024);
        loop {
            let end = chunk.len().min(copied + piece);
            self.pending.extend_from_slice(&chunk[copied..end]);
            copied = end;
            piece *= 2;

            let mut pending = std::mem::take(&mut self.pending);
            let pass = self.read(&pending, false)?;
            if pass.used >= earlier_bytes {
                // The bytes from earlier chunks are read, so what follows them is in `chunk`.
                return Ok(Some(&chunk[pass.used - earlier_bytes..]));
            }
            // Whole chunks kept while waiting for a long element may contain complete ones.
            pending.drain(..pass.used);
            earlier_bytes -= pass.used;
            self.pending = pending;
            if copied == chunk.len() {
                self.retry_at = self.pending.len() * 2;
                return Ok(None);
            }
        }
    }

    /// Checks that the array was closed and returns its elements.
    pub fn finish(mut self) -> Result<Vec<T>, String> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.read(&pending, true)?;
        }
        match self.position {
            Position::End => {
                self.items.shrink_to_fit();
                Ok(self.items)
            }
            _ => Err(format!(
                "the body ended after {} bytes, inside the array",
                self.offset
            )),
        }
    }

    /// Stores the bytes a pass left unread, to be read with the next chunk.
    fn keep_rest(&mut self, rest: &[u8], in_element: bool) {
        self.pending.clear();
        self.pending.extend_from_slice(rest);
        self.retry_at = if in_element { rest.len() * 2 } else { 0 };
    }

    /// Reads elements and punctuation from `text`, which starts at `self.offset` in the
    /// body. Without `at_end`, an element that reaches the end of `text` may continue in
    /// the next chunk, so the pass stops before it.
    fn read(&mut self, text: &[u8], at_end: bool) -> Result<Pass, String> {
        let utf8 = utf8_prefix(text);
        let mut index = 0;
        let mut in_element = false;
        while index < text.len() {
            let byte = text[index];
            if byte.is_ascii_whitespace() {
                index += 1;
                continue;
            }
            match self.position {
                Position::Start if byte == b'[' => {
                    self.position = Position::BeforeElement { first: true };
                }
                Position::Start => return Err(self.unexpected(byte, index, "`[`")),
                Position::BeforeElement { first: true } if byte == b']' => {
                    self.position = Position::End;
                }
                Position::BeforeElement { .. } => match self.element(text, utf8, index, at_end)? {
                    Some(length) => {
                        index += length;
                        self.position = Position::AfterElement;
                        continue;
                    }
                    None => {
                        in_element = true;
                        break;
                    }
                },
                Position::AfterElement if byte == b',' => {
                    self.position = Position::BeforeElement { first: false };
                }
                Position::AfterElement if byte == b']' => self.position = Position::End,
                Position::AfterElement => {
                    return Err(self.unexpected(byte, index, "`,` or `]`"));
                }
                Position::End => return Err(self.unexpected(byte, index, "the end of the body")),
            }
            index += 1;
        }
        self.offset += index;
        Ok(Pass {
            used: index,
            in_element,
        })
    }

    /// Parses the element that starts at `start` in `text` and returns its length, or `None`
    /// when it may continue past the end of `text`. `utf8` is the part of `text` known to be
    /// valid UTF-8, see [`utf8_prefix`].
    fn element(
        &mut self,
        text: &[u8],
        utf8: Option<&str>,
        start: usize,
        at_end: bool,
    ) -> Result<Option<usize>, String> {
        match utf8 {
            Some(valid) if start < valid.len() => {
                let rest = &valid[start..];
                if let Some((item, used)) = T::read_fast(rest) {
                    // As on the serde_json path below, an element that ends exactly at the end
                    // of the text waits for the byte after it.
                    if !at_end && used == rest.len() {
                        return Ok(None);
                    }
                    self.items.push(item);
                    return Ok(Some(used));
                }
                let stream = serde_json::Deserializer::from_str(rest).into_iter::<T>();
                self.next_element(stream, rest.as_bytes(), start, at_end)
            }
            _ => {
                let rest = &text[start..];
                let stream = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
                self.next_element(stream, rest, start, at_end)
            }
        }
    }

    /// Returns the length of the first element of `stream`, as [`ArrayParser::element`] does.
    /// `stream` parses `rest`, the text of the pass from offset `start` on.
    fn next_element<'de, R: serde_json::de::Read<'de>>(
        &mut self,
        mut stream: serde_json::StreamDeserializer<'de, R, T>,
        rest: &[u8],
        start: usize,
        at_end: bool,
    ) -> Result<Option<usize>, String> {
        match stream.next() {
            // A number at the very end could still gain digits. Every complete element is
            // followed by a `,` or `]`, so the pass waits for that byte.
            Some(Ok(_)) if !at_end && stream.byte_offset() == rest.len() => Ok(None),
            Some(Ok(item)) => {
                let used = stream.byte_offset();
                self.items.push(item);
                Ok(Some(used))
            }
            Some(Err(error)) if error.is_eof() && !at_end => Ok(None),
            Some(Err(error)) => Err(self.invalid_element(&error, rest, start)),
            None => Ok(None),
        }
    }

    /// Describes an invalid element with serde_json's message and the error's byte offset in
    /// the body. serde_json gives a line and column within the element, which would mislead
    /// in a body of thousands of elements.
    fn invalid_element(&self, error: &serde_json::Error, rest: &[u8], start: usize) -> String {
        let message = error.to_string();
        let position = format!(" at line {} column {}", error.line(), error.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        // Offset in `rest` of the error's line: just after the newline that ends the line
        // before it.
        let line_start = match error.line() {
            0 | 1 => 0,
            line => rest
                .iter()
                .enumerate()
                .filter(|&(_, &byte)| byte == b'\n')
                .nth(line - 2)
                .map_or(0, |(index, _)| index + 1),
        };
        let at = self.offset + start + line_start + error.column().saturating_sub(1);
        format!(
            "element {}: {message} at byte {at} of the body",
            self.items.len()
        )
    }

    fn unexpected(&self, byte: u8, index: usize, expected: &str) -> String {
        format!(
            "expected {expected} at byte {}, found {:?}",
            self.offset + index,
            char::from(byte)
        )
    }
}

/// Parses a whole body that arrived in one chunk.
pub(super) fn parse_whole<T: DeserializeOwned + FastElement>(
    body: &[u8],
) -> Result<Vec<T>, String> {
    let mut parser = ArrayParser::new();
    parser.reserve_for_body(body.len() as u64);
    parser.feed(body)?;
    parser.finish()
}

/// Returns `text` as a string when it is valid UTF-8, or its valid part when only its last
/// character is cut off by the end of a chunk. Otherwise returns `None`, and the text is
/// parsed from bytes, so that serde_json reports the invalid byte as usual.
///
/// Parsing from a string spares serde_json a UTF-8 check of each string it reads. One check
/// of the whole text costs less: 0.03 s of CPU less for a dry run of 100,000 tokens.
fn utf8_prefix(text: &[u8]) -> Option<&str> {
    match std::str::from_utf8(text) {
        Ok(valid) => Some(valid),
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&text[..error.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    impl FastElement for Value {}
    impl FastElement for serde::de::IgnoredAny {}
    impl FastElement for String {}

    /// Parses `text` fed in chunks of `size` bytes.
    fn parse_in_chunks(text: &str, size: usize) -> Result<Vec<Value>, String> {
        let mut parser = ArrayParser::<Value>::new();
        for chunk in text.as_bytes().chunks(size) {
            parser.feed(chunk)?;
        }
        parser.finish()
    }

    const TRICKY: &str = r#" [ {"a": "x,]}\"\\", "b": [1, {"c": "]"}]}, 2 , "s\\" ,
        null, [ ], {} ] "#;

    #[test]
    fn array_matches_whole_parse_at_every_chunk_size() {
        for text in [TRICKY, CUT] {
            let expected: Vec<Value> = serde_json::from_str(text).unwrap();
            for size in 1..=text.len() {
                assert_eq!(
                    parse_in_chunks(text, size).as_ref(),
                    Ok(&expected),
                    "chunk size {size}"
                );
            }
        }
    }

    /// Elements that serde_json reads up to the end of the input when they are cut off:
    /// numbers, literals, escapes and characters of several bytes.
    const CUT: &str = r#"[{"n": -12.5e+3, "m": 7E-2, "t": true, "f": false, "z": null,
        "u": "\u00e9\ud83d\ude00 é✓😀", "e": "\n\"\\/"}, -0.25, 1e9, 10, "ü", true]"#;

    #[test]
    fn array_cut_at_every_byte() {
        for text in [TRICKY, CUT] {
            let expected: Vec<Value> = serde_json::from_str(text).unwrap();
            for cut in 0..=text.len() {
                let mut parser = ArrayParser::<Value>::new();
                let (head, tail) = text.as_bytes().split_at(cut);
                parser.feed(head).unwrap();
                parser.feed(tail).unwrap();
                assert_eq!(parser.finish().as_ref(), Ok(&expected), "cut at {cut}");
            }
        }
    }

    #[test]
    fn reserved_room_is_given_back() {
        let text = "[1,2,3]";
        let mut parser = ArrayParser::<Value>::new();
        parser.reserve_for_body(1 << 20);
        assert!(parser.items.capacity() >= 4096);
        parser.feed(text.as_bytes()).unwrap();
        let items = parser.finish().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items.capacity(), 3);
    }

    #[test]
    fn array_longer_than_reserved() {
        let text = format!("[{}]", vec!["1"; 100].join(","));
        let mut parser = ArrayParser::<Value>::new();
        parser.reserve_for_body(text.len() as u64);
        parser.feed(text.as_bytes()).unwrap();
        assert_eq!(parser.finish().unwrap().len(), 100);
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

    proptest::proptest! {
        #[test]
        fn array_split_at_random_points(
            names in proptest::collection::vec("[a-z\"\\\\é]{0,3000}", 0..12),
            cuts in proptest::collection::vec(0usize..40_000, 0..30),
        ) {
            let elements: Vec<Value> = names
                .iter()
                .enumerate()
                .map(|(index, name)| serde_json::json!({"id": index, "name": name, "owner": {"n": 1.5}}))
                .collect();
            let text = serde_json::to_string(&elements).unwrap();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(text.len())).collect();
            cuts.sort_unstable();
            let mut parser = ArrayParser::<Value>::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([text.len()]) {
                parser.feed(&text.as_bytes()[start..cut]).unwrap();
                start = cut;
            }
            proptest::prop_assert_eq!(parser.finish(), Ok(elements));
        }
    }

    #[test]
    fn array_end_inside_names_body_length() {
        for size in [1, 2, 100] {
            assert_eq!(
                parse_in_chunks("[1, ", size),
                Err("the body ended after 4 bytes, inside the array".to_owned()),
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn utf8_prefix_leaves_out_a_cut_character() {
        let text = "[\"é✓\"]".as_bytes();
        assert_eq!(utf8_prefix(text), Some("[\"é✓\"]"));
        // The check mark takes three bytes. Cut after its first or second byte, the text
        // is valid up to it.
        assert_eq!(utf8_prefix(&text[..5]), Some("[\"é"));
        assert_eq!(utf8_prefix(&text[..6]), Some("[\"é"));
        assert_eq!(utf8_prefix(b"[\"\xff\"]"), None);
        assert_eq!(utf8_prefix(b""), Some(""));
    }

    #[test]
    fn invalid_utf8_matches_serde_json() {
        // serde_json checks the UTF-8 of the strings it parses, not of the ones it skips.
        let skipped = b"[{\"a\": \"\xff\"}, 1]";
        let mut parser = ArrayParser::<serde::de::IgnoredAny>::new();
        for chunk in skipped.chunks(3) {
            parser.feed(chunk).unwrap();
        }
        assert_eq!(parser.finish().unwrap().len(), 2);

        let parsed = b"[\"ok\", \"\xff\"]";
        for size in [1, 3, 100] {
            let mut parser = ArrayParser::<String>::new();
            let result = parsed.chunks(size).try_for_each(|chunk| parser.feed(chunk));
            let error = result.and_then(|()| parser.finish().map(drop)).unwrap_err();
            assert!(error.starts_with("element 1:"), "{error}");
            assert!(error.contains("invalid unicode code point"), "{error}");
        }
    }

    #[test]
    fn array_error_names_element() {
        let error = parse_in_chunks(r#"[{"id":1},{"id":}]"#, 4).unwrap_err();
        assert!(error.starts_with("element 1:"), "{error}");
    }

    #[test]
    fn array_error_gives_body_offset() {
        // The `}` at byte 16 of the body is where serde_json expected a value.
        let body = r#"[{"id":1},{"id":}]"#;
        assert_eq!(body.as_bytes()[16], b'}');
        for size in [1, 4, 100] {
            let error = parse_in_chunks(body, size).unwrap_err();
            assert_eq!(
                error, "element 1: expected value at byte 16 of the body",
                "chunks of {size}"
            );
        }
        // On a later line of the element, the offset counts the lines before it.
        let body = "[1,\n {\"id\":\n  ]}]";
        assert_eq!(body.as_bytes()[14], b']');
        let error = parse_in_chunks(body, 100).unwrap_err();
        assert_eq!(error, "element 1: expected value at byte 14 of the body");
    }
}
