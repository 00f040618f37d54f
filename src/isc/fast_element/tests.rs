use serde::de::DeserializeOwned;

use super::*;

/// A token as the API lists it.
const API_TOKEN: &str = r#"{"id":"2c9180867a8e3c43017a8f1d2f4e0a5b","name":"ci-export","scope":["sp:scopes:default","idn:sources:read"],"owner":{"type":"IDENTITY","id":"2c9180867a8e3c43017a8f1d2f4e0000","name":"Ann Smith"},"created":"2025-03-01T12:00:00.000Z","lastUsed":"2026-11-20T08:15:30.123Z","managed":false,"accessTokenValiditySeconds":43200,"expirationDate":null,"userAwareTokenNeverExpires":true}"#;

/// A token with whitespace, nulls, unknown fields of every kind and no optional field.
const ODD_TOKEN: &str = " {\n \"name\" : \"n\", \"id\":\"a\",\t\"x\":[1,-2.5e+3,0.0,{\"k\":[true,false,null]},\"s\"],\r\n \"owner\":{\"name\":null,\"extra\":{}},\"created\":\"2025-12-01T10:00:00Z\",\"scope\":null,\"managed\":null,\"accessTokenValiditySeconds\":null,\"lastUsed\":null,\"n\":-0} ";

/// Parses the element at the start of `text` as the listing does without the fast reader.
fn serde_read<T: DeserializeOwned>(text: &str) -> Option<(T, usize)> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<T>();
    match stream.next() {
        Some(Ok(value)) => Some((value, stream.byte_offset())),
        _ => None,
    }
}

/// Checks that the fast reader agrees with serde_json wherever it does not give up, and
/// returns whether it read `text`.
fn agrees<T: FastElement + DeserializeOwned + PartialEq + std::fmt::Debug>(text: &str) -> bool {
    // The listing hands the reader the text from the element's first byte on.
    let start = text.len() - text.trim_start_matches([' ', '\n', '\r', '\t']).len();
    let text = &text[start..];
    let Some((fast, length)) = T::read_fast(text) else {
        return false;
    };
    match serde_read::<T>(text) {
        Some((expected, expected_length)) => {
            assert_eq!(fast, expected, "{text}");
            assert_eq!(length, expected_length, "{text}");
        }
        None => panic!("the fast reader accepts what serde_json rejects: {text}"),
    }
    true
}

#[test]
fn api_form_is_read_fast_and_alike() {
    for text in [API_TOKEN, ODD_TOKEN] {
        assert!(agrees::<Token>(text), "{text}");
        assert!(agrees::<TokenSummary>(text), "{text}");
    }
    let (token, length) = Token::read_fast(API_TOKEN).unwrap();
    assert_eq!(length, API_TOKEN.len());
    assert_eq!(token.scope.as_ref().map(Vec::capacity), Some(2));
    assert_eq!(token.owner.name.as_deref(), Some("Ann Smith"));
    assert_eq!(token.user_aware_token_never_expires, Some(true));
}

#[test]
fn string_list_exact_at_any_length() {
    for count in [0, 1, SHORT_LIST, SHORT_LIST + 1, 3 * SHORT_LIST] {
        let scopes: Vec<String> = (0..count).map(|n| format!("scope:{n}")).collect();
        let text = API_TOKEN.replacen(
            r#"["sp:scopes:default","idn:sources:read"]"#,
            &serde_json::to_string(&scopes).unwrap(),
            1,
        );
        assert!(agrees::<Token>(&text), "{text}");
        let scope = Token::read_fast(&text).unwrap().0.scope.unwrap();
        assert_eq!(scope, scopes);
        assert_eq!(scope.capacity(), count);
    }
}

#[test]
fn length_ends_at_the_closing_brace() {
    let text = format!("{API_TOKEN} ,{API_TOKEN}");
    assert_eq!(Token::read_fast(&text).unwrap().1, API_TOKEN.len());
    assert_eq!(TokenSummary::read_fast(&text).unwrap().1, API_TOKEN.len());
}

#[test]
fn gives_up_on_what_it_does_not_handle() {
    let replace = |from: &str, to: &str| API_TOKEN.replacen(from, to, 1);
    let cases = [
        // An escape, even one serde_json reads as the same key or value.
        replace(r#""id":"#, r#""i\u0064":"#),
        replace("ci-export", r"ci\/export"),
        // Timestamps in other forms, which chrono reads.
        replace("2025-03-01T12:00:00.000Z", "2025-03-01T13:00:00.000+01:00"),
        replace(
            "2025-03-01T12:00:00.000Z",
            "2025-03-01T12:00:00.0000000001Z",
        ),
        // Numbers serde_json reads as another type than u32, or not at all.
        replace("43200", "43200.0"),
        replace("43200", "4294967296"),
        replace("43200", "-1"),
        replace("43200", "043200"),
        // A repeated field, which serde_json rejects.
        replace(r#""managed":false"#, r#""managed":false,"managed":false"#),
        // Nesting deeper than the fast reader skips, and a cut-off element.
        replace(
            r#""managed""#,
            &format!(r#""deep":{}1{},"managed""#, "[".repeat(20), "]".repeat(20)),
        ),
        API_TOKEN[..API_TOKEN.len() - 1].to_owned(),
        // A control character inside a string.
        replace("ci-export", "ci\u{1}export"),
    ];
    for text in &cases {
        assert!(Token::read_fast(text).is_none(), "{text}");
        agrees::<Token>(text);
    }
    // serde_json reads the escapes and the deep value, which the fast reader leaves to it.
    assert!(serde_read::<Token>(&cases[0]).is_some());
    assert!(serde_read::<Token>(&cases[9]).is_some());
}

#[test]
fn summary_skips_what_it_does_not_keep() {
    // A summary does not read the scope, so a repeated or odd scope is fine for both.
    let text = API_TOKEN.replacen(r#""scope":["#, r#""scope":1e5,"scope":["#, 1);
    assert!(agrees::<TokenSummary>(&text));
    assert!(!agrees::<Token>(&text));
    // A summary still requires name, owner and a valid created.
    for field in [
        r#""name":"ci-export","#,
        r#""created":"2025-03-01T12:00:00.000Z","#,
    ] {
        let text = API_TOKEN.replacen(field, "", 1);
        assert!(TokenSummary::read_fast(&text).is_none(), "{text}");
        assert!(serde_read::<TokenSummary>(&text).is_none(), "{text}");
    }
}

/// Every text one edit away from the samples: each byte replaced by a byte that matters to
/// JSON, each byte dropped, and each cut. The fast reader must agree with serde_json on all
/// of them, and must still read a good share.
#[test]
fn agrees_with_serde_json_one_edit_away() {
    const BYTES: &[u8] = b"\"\\{}[],: \n0159-+.eEtfnulx\x01";
    let mut edits = Vec::new();
    for sample in [API_TOKEN, ODD_TOKEN] {
        for at in 0..sample.len() {
            for &byte in BYTES {
                let mut text = sample.as_bytes().to_vec();
                text[at] = byte;
                edits.push(text);
            }
            let mut dropped = sample.as_bytes().to_vec();
            dropped.remove(at);
            edits.push(dropped);
            edits.push(sample.as_bytes()[..at].to_vec());
        }
    }
    let (mut tokens_read, mut summaries_read) = (0, 0);
    for edit in &edits {
        let text = std::str::from_utf8(edit).expect("the samples and edits are ASCII");
        tokens_read += usize::from(agrees::<Token>(text));
        summaries_read += usize::from(agrees::<TokenSummary>(text));
    }
    // Many edits touch a name or a value the reader skips and leave the element valid.
    assert!(
        tokens_read > edits.len() / 10,
        "{tokens_read} of {}",
        edits.len()
    );
    assert!(
        summaries_read > tokens_read,
        "{summaries_read} of {}",
        edits.len()
    );
}
