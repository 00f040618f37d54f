//! The tokens of the simulated tenant: loading them from a JSON file, and the in-memory
//! store that the list, delete and control endpoints share.
//!
//! Each token is kept as the exact JSON text it was given (whitespace between JSON tokens
//! removed, member order and unknown fields preserved), next to the three fields the
//! endpoints need: `id`, `lastUsed` and `owner.id`. List bodies are built by joining the
//! stored texts, so a listing of 1,000,000 tokens costs one pass and no re-serialization.
//!
//! The store keeps tokens in file order. A delete leaves a tombstone and removes the id from
//! a hash index, so it costs O(1). The store compacts itself once tombstones outnumber live
//! tokens, which keeps the amortized cost of a delete O(1) as well.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde_json::Value;

use super::SimError;
use super::json;

/// Reason a token is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("it is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("it is not a JSON object")]
    NotObject,
    #[error("it has no string `id`")]
    MissingId,
    #[error("`lastUsed` must be an RFC 3339 date-time or null, found {0}")]
    InvalidLastUsed(String),
    #[error("`owner` must be an object whose `id` is a string or absent")]
    InvalidOwner,
    #[error("a patch cannot change `id` (from {from} to {to})")]
    IdChanged { from: String, to: String },
}

/// One personal access token as the simulated tenant serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimToken {
    raw: Box<str>,
    id: Box<str>,
    owner_id: Option<Box<str>>,
    last_used: Option<DateTime<Utc>>,
}

/// The fields the endpoints read. serde skips every other member without allocating.
#[derive(serde::Deserialize)]
struct IndexedFields {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, rename = "lastUsed")]
    last_used: Option<Value>,
    #[serde(default)]
    owner: Option<Value>,
}

impl SimToken {
    /// Parses one token from its JSON text: an object with a string `id`, an optional
    /// `lastUsed` (RFC 3339 or null) and an optional `owner` object.
    pub fn from_json(text: &str) -> Result<Self, TokenError> {
        if !text.trim_start().starts_with('{') {
            return Err(TokenError::NotObject);
        }
        let fields: IndexedFields = serde_json::from_str(text)
            .map_err(|error| TokenError::InvalidJson(error.to_string()))?;

        let id = match fields.id {
            Some(Value::String(id)) => id,
            _ => return Err(TokenError::MissingId),
        };
        let last_used = match fields.last_used {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(
                DateTime::parse_from_rfc3339(&text)
                    .map_err(|_| TokenError::InvalidLastUsed(format!("{text:?}")))?
                    .with_timezone(&Utc),
            ),
            Some(other) => return Err(TokenError::InvalidLastUsed(other.to_string())),
        };
        let owner_id = match fields.owner {
            None | Some(Value::Null) => None,
            Some(Value::Object(owner)) => match owner.get("id") {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) => Some(id.as_str().into()),
                Some(_) => return Err(TokenError::InvalidOwner),
            },
            Some(_) => return Err(TokenError::InvalidOwner),
        };

        Ok(Self {
            raw: json::compact(text).into_boxed_str(),
            id: id.into_boxed_str(),
            owner_id,
            last_used,
        })
    }

    /// Builds a token from a JSON value, with the same rules as [`SimToken::from_json`].
    pub fn from_value(value: &Value) -> Result<Self, TokenError> {
        Self::from_json(&value.to_string())
    }

    /// Returns the token's `id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the token's JSON text as the list endpoint serves it.
    pub fn raw_json(&self) -> &str {
        &self.raw
    }

    /// Returns the owner's identity id (`owner.id`), if the token has one.
    pub fn owner_id(&self) -> Option<&str> {
        self.owner_id.as_deref()
    }

    /// Returns the token's `lastUsed`, or `None` when it is null or absent.
    pub fn last_used(&self) -> Option<DateTime<Utc>> {
        self.last_used
    }

    /// Returns a copy of this token with the top-level members of `patch` (a JSON object)
    /// set: existing members keep their position, new ones are appended, and a member set
    /// to `null` stays present with the value null.
    pub fn merged(&self, patch: &str) -> Result<Self, TokenError> {
        serde_json::from_str::<IgnoredAny>(patch)
            .map_err(|error| TokenError::InvalidJson(error.to_string()))?;
        let patch_members = json::object_members(patch).ok_or(TokenError::NotObject)?;
        let mut members: Vec<(String, String)> = json::object_members(&self.raw)
            .ok_or(TokenError::NotObject)?
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();

        for (key, value) in patch_members {
            let name = decode_key(key)?;
            let existing = members
                .iter_mut()
                .find(|(existing, _)| decode_key(existing).is_ok_and(|k| k == name));
            match existing {
                Some((_, slot)) => *slot = value.to_owned(),
                None => members.push((key.to_owned(), value.to_owned())),
            }
        }

        let mut text = String::from("{");
        for (index, (key, value)) in members.iter().enumerate() {
            if index > 0 {
                text.push(',');
            }
            text.push_str(key);
            text.push(':');
            text.push_str(value);
        }
        text.push('}');

        let merged = Self::from_json(&text)?;
        if merged.id != self.id {
            return Err(TokenError::IdChanged {
                from: self.id.to_string(),
                to: merged.id.to_string(),
            });
        }
        Ok(merged)
    }
}

fn decode_key(raw: &str) -> Result<String, TokenError> {
    serde_json::from_str(raw).map_err(|error| TokenError::InvalidJson(error.to_string()))
}

/// Reads a tokens file: a JSON array of objects, each with a string `id` (unique in the
/// file), shaped like the list response of the API.
pub fn load_tokens(path: impl AsRef<Path>) -> Result<Vec<SimToken>, SimError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| SimError::ReadTokens {
        path: path.display().to_string(),
        source,
    })?;
    parse_tokens(&text, &path.display().to_string())
}

/// Parses the text of a tokens file. `source` names the file in error messages.
pub fn parse_tokens(text: &str, source: &str) -> Result<Vec<SimToken>, SimError> {
    let invalid = |reason: String| SimError::InvalidTokens {
        source_name: source.to_owned(),
        reason,
    };

    serde_json::from_str::<IgnoredAny>(text)
        .map_err(|error| invalid(format!("it is not valid JSON: {error}")))?;
    let elements = json::array_elements(text).ok_or_else(|| {
        invalid("the top-level value must be a JSON array of token objects".to_owned())
    })?;

    let mut tokens = Vec::with_capacity(elements.len());
    let mut first_index: HashMap<String, usize> = HashMap::with_capacity(elements.len());
    for (index, element) in elements.into_iter().enumerate() {
        let token = SimToken::from_json(element)
            .map_err(|error| invalid(format!("element {index} is invalid: {error}")))?;
        match first_index.entry(token.id.to_string()) {
            Entry::Occupied(first) => {
                return Err(invalid(format!(
                    "element {index} repeats the id {:?} of element {}; ids must be unique",
                    token.id,
                    first.get()
                )));
            }
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
        }
        tokens.push(token);
    }
    Ok(tokens)
}

/// The tenant's tokens in file order, with O(1) lookup and delete by id.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    slots: Vec<Option<SimToken>>,
    index: HashMap<Box<str>, usize>,
}

impl TokenStore {
    /// Builds a store, or returns the first id that appears twice.
    pub(crate) fn new(tokens: Vec<SimToken>) -> Result<Self, String> {
        let mut index = HashMap::with_capacity(tokens.len());
        for (position, token) in tokens.iter().enumerate() {
            if index.insert(token.id.clone(), position).is_some() {
                return Err(token.id.to_string());
            }
        }
        Ok(Self {
            slots: tokens.into_iter().map(Some).collect(),
            index,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &SimToken> {
        self.slots.iter().flatten()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&SimToken> {
        self.index
            .get(id)
            .and_then(|&position| self.slots[position].as_ref())
    }

    /// Replaces the token with the same id in place, or appends it. Returns `true` when the
    /// token is new.
    pub(crate) fn upsert(&mut self, token: SimToken) -> bool {
        match self.index.get(token.id()) {
            Some(&position) => {
                self.slots[position] = Some(token);
                false
            }
            None => {
                self.index.insert(token.id.clone(), self.slots.len());
                self.slots.push(Some(token));
                true
            }
        }
    }

    /// Removes the token with this id. Returns `false` when there is none.
    pub(crate) fn remove(&mut self, id: &str) -> bool {
        let Some(position) = self.index.remove(id) else {
            return false;
        };
        self.slots[position] = None;

        let tombstones = self.slots.len() - self.index.len();
        if tombstones > 1024 && tombstones > self.index.len() {
            self.compact();
        }
        true
    }

    fn compact(&mut self) {
        self.slots.retain(Option::is_some);
        for (position, token) in self.slots.iter().flatten().enumerate() {
            if let Some(slot) = self.index.get_mut(token.id()) {
                *slot = position;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str) -> SimToken {
        SimToken::from_json(&format!(r#"{{"id":"{id}","name":"n"}}"#)).unwrap()
    }

    #[test]
    fn from_json_keeps_member_order_and_unknown_fields() {
        let text = r#"{ "name": "x", "id": "a1", "extra": {"k": [1, 2]},
                        "owner": {"id": "o1"}, "lastUsed": "2026-02-01T12:00:00.5+02:00" }"#;
        let token = SimToken::from_json(text).unwrap();
        assert_eq!(
            token.raw_json(),
            r#"{"name":"x","id":"a1","extra":{"k":[1,2]},"owner":{"id":"o1"},"lastUsed":"2026-02-01T12:00:00.5+02:00"}"#
        );
        assert_eq!(token.owner_id(), Some("o1"));
        assert_eq!(
            token.last_used().unwrap().to_rfc3339(),
            "2026-02-01T10:00:00.500+00:00"
        );
    }

    #[test]
    fn from_json_rejects_bad_fields() {
        assert_eq!(SimToken::from_json("[1]"), Err(TokenError::NotObject));
        assert_eq!(
            SimToken::from_json(r#"{"id":5}"#),
            Err(TokenError::MissingId)
        );
        assert_eq!(SimToken::from_json(r#"{}"#), Err(TokenError::MissingId));
        assert!(matches!(
            SimToken::from_json(r#"{"id":"a","lastUsed":"yesterday"}"#),
            Err(TokenError::InvalidLastUsed(_))
        ));
        assert!(matches!(
            SimToken::from_json(r#"{"id":"a","lastUsed":7}"#),
            Err(TokenError::InvalidLastUsed(_))
        ));
        assert_eq!(
            SimToken::from_json(r#"{"id":"a","owner":{"id":3}}"#),
            Err(TokenError::InvalidOwner)
        );
        assert!(matches!(
            SimToken::from_json(r#"{"id":"a""#),
            Err(TokenError::InvalidJson(_))
        ));
    }

    #[test]
    fn null_and_absent_last_used_are_none() {
        let null = SimToken::from_json(r#"{"id":"a","lastUsed":null}"#).unwrap();
        let absent = SimToken::from_json(r#"{"id":"b"}"#).unwrap();
        assert_eq!(null.last_used(), None);
        assert_eq!(absent.last_used(), None);
    }

    #[test]
    fn merged_replaces_in_place_and_appends() {
        let token = SimToken::from_json(r#"{"id":"a","lastUsed":null,"name":"n"}"#).unwrap();
        let merged = token
            .merged(r#"{"lastUsed":"2026-01-01T00:00:00Z","new":[1]}"#)
            .unwrap();
        assert_eq!(
            merged.raw_json(),
            r#"{"id":"a","lastUsed":"2026-01-01T00:00:00Z","name":"n","new":[1]}"#
        );
        assert!(merged.last_used().is_some());
    }

    #[test]
    fn merged_rejects_id_change_and_non_object() {
        let token = token("a");
        assert!(matches!(
            token.merged(r#"{"id":"b"}"#),
            Err(TokenError::IdChanged { .. })
        ));
        assert_eq!(token.merged("[1]"), Err(TokenError::NotObject));
    }

    #[test]
    fn parse_tokens_names_the_bad_element() {
        let error = parse_tokens(r#"[{"id":"a"},{"name":"x"}]"#, "t.json").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("t.json"), "{message}");
        assert!(message.contains("element 1"), "{message}");
        assert!(message.contains("`id`"), "{message}");
    }

    #[test]
    fn parse_tokens_rejects_non_array_and_duplicates() {
        let error = parse_tokens(r#"{"id":"a"}"#, "t.json").unwrap_err();
        assert!(error.to_string().contains("JSON array"), "{error}");

        let error = parse_tokens(r#"[{"id":"a"},{"id":"a"}]"#, "t.json").unwrap_err();
        assert!(error.to_string().contains("element 1 repeats"), "{error}");

        let error = parse_tokens("[{\"id\":\"a\"},", "t.json").unwrap_err();
        assert!(error.to_string().contains("not valid JSON"), "{error}");
    }

    #[test]
    fn store_keeps_order_after_deletes_and_compaction() {
        let count = 5000;
        let tokens: Vec<SimToken> = (0..count).map(|i| token(&format!("t{i}"))).collect();
        let mut store = TokenStore::new(tokens).unwrap();

        for i in (0..count).filter(|i| i % 4 != 0) {
            assert!(store.remove(&format!("t{i}")));
        }
        assert!(!store.remove("t1"));
        assert_eq!(store.len(), count / 4);

        let ids: Vec<&str> = store.iter().map(SimToken::id).collect();
        let expected: Vec<String> = (0..count).step_by(4).map(|i| format!("t{i}")).collect();
        assert_eq!(ids, expected);
        assert_eq!(store.get("t8").unwrap().id(), "t8");
        assert!(store.get("t9").is_none());
    }

    #[test]
    fn store_upsert_replaces_in_place() {
        let mut store = TokenStore::new(vec![token("a"), token("b")]).unwrap();
        let replacement = SimToken::from_json(r#"{"id":"a","name":"new"}"#).unwrap();
        assert!(!store.upsert(replacement));
        assert!(store.upsert(token("c")));
        let raws: Vec<&str> = store.iter().map(SimToken::raw_json).collect();
        assert_eq!(
            raws,
            vec![
                r#"{"id":"a","name":"new"}"#,
                r#"{"id":"b","name":"n"}"#,
                r#"{"id":"c","name":"n"}"#
            ]
        );
    }

    #[test]
    fn store_rejects_duplicate_ids() {
        assert_eq!(
            TokenStore::new(vec![token("a"), token("a")]).unwrap_err(),
            "a"
        );
    }
}
