//! A fast reader for listing elements in the form the API sends: objects whose strings have
//! no escapes and whose timestamps are `YYYY-MM-DDTHH:MM:SS[.f]Z`.
//!
//! serde_json with the derived `Deserialize` remains the definition of a valid element. The
//! fast reader either returns the value serde_json would return, and the same length, or
//! gives up, and the element is parsed with serde_json. It gives up at anything it does not
//! handle itself: an escape, a repeated field, a value of another type than the field's, a
//! timestamp in another form, nesting deeper than [`MAX_DEPTH`], or the end of the text. So
//! it never accepts what serde_json rejects, and every error message is serde_json's.
//!
//! It matches keys as bytes, borrows each string straight from the text and calls no
//! visitor. In the `listing_parse` bench it reads 100,000 full tokens in 69 ms against
//! serde_json's 96 ms, and a dry run of that many tokens takes about 7% less CPU.

use chrono::{DateTime, Utc};

use super::model::{Owner, Token, TokenSummary, parse_utc_fast, parse_utc_fast_bytes};
use crate::json_text::special_byte;

/// Deepest nesting of arrays and objects the fast reader skips inside an unknown field.
/// serde_json allows 128 levels, so deeper values go to it.
const MAX_DEPTH: usize = 16;

/// Members of a listed token, in the order the API sends them.
const TOKEN_KEYS: &[&str] = &[
    "id",
    "name",
    "scope",
    "owner",
    "created",
    "lastUsed",
    "managed",
    "accessTokenValiditySeconds",
    "expirationDate",
    "userAwareTokenNeverExpires",
];

/// Members of a token's owner, in the order the API sends them.
const OWNER_KEYS: &[&str] = &["type", "id", "name"];

/// Number of a list's strings gathered on the stack. A token has a few scopes.
const SHORT_LIST: usize = 8;

/// Length of a timestamp in the API's form, `"YYYY-MM-DDTHH:MM:SS.sssZ"` with its quotes.
const API_TIMESTAMP_LENGTH: usize = 26;

/// A listing element that can be read without serde_json.
pub(crate) trait FastElement: Sized {
    /// Reads the element at the start of `text`, which starts with its first byte, and
    /// returns it and its length in bytes. `None` means: parse it with serde_json.
    fn read_fast(_text: &str) -> Option<(Self, usize)> {
        None
    }
}

impl FastElement for Token {
    fn read_fast(text: &str) -> Option<(Self, usize)> {
        let mut cursor = Cursor::new(text);
        let mut id = None;
        let mut name = None;
        let mut scope = None;
        let mut owner = None;
        let mut created = None;
        let mut last_used = None;
        let mut managed = None;
        let mut validity = None;
        let mut expiration_date = None;
        let mut never_expires = None;

        cursor.object(TOKEN_KEYS, |cursor, key| match key {
            "id" => set(&mut id, cursor.string()?.to_owned()),
            "name" => set(&mut name, cursor.string()?.to_owned()),
            "scope" => set(&mut scope, cursor.optional(Cursor::string_list)?),
            "owner" => set(&mut owner, cursor.owner()?),
            "created" => set(&mut created, cursor.instant()?),
            "lastUsed" => set(&mut last_used, cursor.optional(Cursor::instant)?),
            "managed" => set(&mut managed, cursor.optional(Cursor::boolean)?),
            "accessTokenValiditySeconds" => set(&mut validity, cursor.optional(Cursor::u32)?),
            "expirationDate" => set(&mut expiration_date, cursor.optional(Cursor::instant)?),
            "userAwareTokenNeverExpires" => {
                set(&mut never_expires, cursor.optional(Cursor::boolean)?)
            }
            _ => cursor.skip_value(MAX_DEPTH),
        })?;

        let token = Token {
            id: id?,
            name: name?,
            scope: scope.flatten(),
            owner: owner?,
            created: created?,
            last_used: last_used.flatten(),
            managed: managed.flatten().unwrap_or(false),
            access_token_validity_seconds: validity.flatten(),
            expiration_date: expiration_date.flatten(),
            user_aware_token_never_expires: never_expires.flatten(),
        };
        Some((token, cursor.at))
    }
}

impl FastElement for TokenSummary {
    fn read_fast(text: &str) -> Option<(Self, usize)> {
        let mut cursor = Cursor::new(text);
        let mut id = None;
        let mut name = None;
        let mut owner = None;
        let mut created = None;
        let mut last_used = None;
        let mut expiration_date = None;

        cursor.object(TOKEN_KEYS, |cursor, key| match key {
            "id" => set(&mut id, cursor.string()?.to_owned()),
            "name" => set(&mut name, cursor.skip_value(MAX_DEPTH)?),
            "owner" => set(&mut owner, cursor.skip_value(MAX_DEPTH)?),
            "created" => set(&mut created, cursor.instant()?),
            "lastUsed" => set(&mut last_used, cursor.optional(Cursor::instant)?),
            "expirationDate" => set(&mut expiration_date, cursor.optional(Cursor::instant)?),
            _ => cursor.skip_value(MAX_DEPTH),
        })?;
        // serde_json requires these fields, and checks the timestamps, but keeps nothing.
        name?;
        owner?;
        created?;

        let summary = TokenSummary {
            id: id?,
            last_used: last_used.flatten(),
        };
        Some((summary, cursor.at))
    }
}

/// Stores the value of a field, or gives up when the field was already read: serde_json
/// rejects a repeated field.
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// A position in the text of one element. Every method returns `None` to give up, and may
/// leave the position anywhere when it does.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace and returns the next byte.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(self.at) {
            self.at += 1;
        }
        bytes.get(self.at).copied()
    }

    /// Skips whitespace and `byte`.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Skips whitespace and `word`.
    fn word(&mut self, word: &str) -> Option<()> {
        self.peek()?;
        self.bytes()[self.at..]
            .starts_with(word.as_bytes())
            .then(|| self.at += word.len())
    }

    /// Reads a string that has no escape.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let length = special_byte(&self.bytes()[start..])?;
        // A closing quote ends the string. An escape and a control character (which JSON
        // allows only escaped) are left to serde_json.
        if self.bytes()[start + length] != b'"' {
            return None;
        }
        self.at = start + length + 1;
        // Both ends are next to an ASCII quote, so they are character boundaries.
        self.text.get(start..start + length)
    }

    /// Reads `null` as `Some(None)`, or else a value with `read`.
    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.word("null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.word("true").map(|()| true),
            b'f' => self.word("false").map(|()| false),
            _ => None,
        }
    }

    /// Reads an unsigned integer without sign, fraction or exponent that fits `u32`, the
    /// numbers serde_json reads as `u32`.
    fn u32(&mut self) -> Option<u32> {
        self.peek()?;
        let bytes = self.bytes();
        let digits = bytes[self.at..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        let number = &bytes[self.at..self.at + digits];
        // A leading zero followed by digits is not JSON, a longer number does not fit, and
        // a fraction or an exponent makes a float.
        if digits == 0 || digits > 10 || (digits > 1 && number[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = bytes.get(self.at + digits) {
            return None;
        }
        let value = number
            .iter()
            .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'));
        self.at += digits;
        u32::try_from(value).ok()
    }

    /// Reads a timestamp in the API's form. Another form goes to serde_json and chrono.
    fn instant(&mut self) -> Option<DateTime<Utc>> {
        self.peek()?;
        // The API's form is parsed in place, without a search for the closing quote: the
        // parser accepts only digits and `-T:.Z`, so no quote, escape or control character
        // can lie between the two quotes it checks.
        if let Some(quoted) = self.bytes().get(self.at..self.at + API_TIMESTAMP_LENGTH)
            && quoted[0] == b'"'
            && quoted[API_TIMESTAMP_LENGTH - 1] == b'"'
            && let Some(instant) = parse_utc_fast_bytes(&quoted[1..API_TIMESTAMP_LENGTH - 1])
        {
            self.at += API_TIMESTAMP_LENGTH;
            return Some(instant);
        }
        parse_utc_fast(self.string()?)
    }

    /// Reads the key of an object member. `expected` is the key the API sends at this
    /// place. Comparing it first spares the search for the end of the string.
    fn key(&mut self, expected: Option<&'static str>) -> Option<&'a str> {
        self.peek()?;
        if let Some(expected) = expected {
            let end = self.at + 1 + expected.len();
            let rest = self.bytes();
            if rest.get(end) == Some(&b'"')
                && rest[self.at] == b'"'
                && &rest[self.at + 1..end] == expected.as_bytes()
            {
                self.at = end + 1;
                return Some(expected);
            }
        }
        self.string()
    }

    /// Reads an array of strings into a vector without spare capacity. The strings are
    /// gathered as borrowed slices first, so the vector is allocated once, at its length.
    fn string_list(&mut self) -> Option<Vec<String>> {
        let mut gathered = [""; SHORT_LIST];
        let mut count = 0;
        let mut longer = Vec::new();
        self.array(|cursor| {
            let text = cursor.string()?;
            match gathered.get_mut(count) {
                Some(slot) => *slot = text,
                None => longer.push(text),
            }
            count += 1;
            Some(())
        })?;
        let mut list = Vec::with_capacity(count);
        list.extend(
            gathered[..count.min(SHORT_LIST)]
                .iter()
                .map(|text| (*text).to_owned()),
        );
        list.extend(longer.into_iter().map(str::to_owned));
        Some(list)
    }

    fn owner(&mut self) -> Option<Owner> {
        let mut id = None;
        let mut name = None;
        self.object(OWNER_KEYS, |cursor, key| match key {
            "id" => set(
                &mut id,
                cursor.optional(|cursor| cursor.string().map(str::to_owned))?,
            ),
            "name" => set(
                &mut name,
                cursor.optional(|cursor| cursor.string().map(str::to_owned))?,
            ),
            _ => cursor.skip_value(MAX_DEPTH),
        })?;
        Some(Owner {
            id: id.flatten(),
            name: name.flatten(),
        })
    }

    /// Reads an object, calling `member` with each key once the cursor is at its value.
    /// `keys` are the keys the API sends, in its order.
    fn object(
        &mut self,
        keys: &[&'static str],
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut index = 0;
        loop {
            let key = self.key(keys.get(index).copied())?;
            self.eat(b':')?;
            member(self, key)?;
            index += 1;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Reads an array, calling `element` once the cursor is at each element.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Checks and skips any JSON value, as serde_json skips the value of an unknown field.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' if depth > 0 => self.object(&[], |cursor, _| cursor.skip_value(depth - 1)),
            b'[' if depth > 0 => self.array(|cursor| cursor.skip_value(depth - 1)),
            b't' => self.word("true"),
            b'f' => self.word("false"),
            b'n' => self.word("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// Skips a number of JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let bytes = self.bytes();
        let digits_from = |at: usize| {
            bytes[at..]
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count()
        };
        let mut at = self.at;
        if bytes[at] == b'-' {
            at += 1;
        }
        match bytes.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => at += digits_from(at),
            _ => return None,
        }
        if bytes.get(at) == Some(&b'.') {
            let digits = digits_from(at + 1);
            if digits == 0 {
                return None;
            }
            at += 1 + digits;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let digits = digits_from(at);
            if digits == 0 {
                return None;
            }
            at += digits;
        }
        self.at = at;
        Some(())
    }
}

#[cfg(test)]
mod tests;
