//! The cost of parsing a large listing, apart from everything else a run does.
//!
//! `cargo bench --bench listing_parse [-- TOKENS]` builds a listing of TOKENS tokens (default
//! 100,000) shaped like the API's, then parses it whole, several times, six ways:
//! - `validate`: every element read and dropped (`IgnoredAny`), the least any JSON parser
//!   built on serde_json can do;
//! - `summaries`: id and last use of each token, as patrol reads the `lastUsed le` and
//!   `lastUsed isnull` listings;
//! - `tokens`: every field, as patrol reads the full listing;
//! - `tokens, bytes`: the same from bytes, which makes serde_json check each string as
//!   UTF-8, where the three above check the whole text once and parse it as a string, as
//!   patrol does;
//! - `patrol, sums` and `patrol, tokens`: the summaries and the tokens as a run reads them,
//!   with patrol's listing reader, which falls back to serde_json for elements outside the
//!   API's usual form.
//!
//! Times are wall-clock times of one thread, which equal its CPU time here. The first
//! repetition writes to fresh memory, and the later ones reuse the memory that the earlier
//! parses freed. Both are printed. A run writes to fresh memory, so its figure lies between
//! them.

use std::time::{Duration, Instant};

use patrol::isc::{Token, TokenSummary};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const DEFAULT_TOKENS: usize = 100_000;
const REPETITIONS: usize = 7;

fn main() {
    let tokens = std::env::args()
        .skip(1)
        .find(|argument| !argument.starts_with('-'))
        .map_or(DEFAULT_TOKENS, |text| {
            text.parse()
                .unwrap_or_else(|_| panic!("invalid token count {text:?}: give a whole number"))
        });
    let body = listing(tokens);
    let megabytes = body.len() as f64 / 1e6;
    println!("listing of {tokens} tokens, {megabytes:.1} MB");
    println!(
        "{:<14} {:>12} {:>12} {:>10}",
        "parse", "first ms", "median ms", "MB/s"
    );
    report("validate", megabytes, || {
        let elements: Vec<serde::de::IgnoredAny> = serde_json::from_str(text(&body)).unwrap();
        elements.len()
    });
    report("summaries", megabytes, || {
        let summaries: Vec<TokenSummary> = serde_json::from_str(text(&body)).unwrap();
        summaries.len()
    });
    report("tokens", megabytes, || {
        let tokens: Vec<Token> = serde_json::from_str(text(&body)).unwrap();
        tokens.len()
    });
    report("tokens, bytes", megabytes, || {
        let tokens: Vec<Token> = serde_json::from_slice(&body).unwrap();
        tokens.len()
    });
    report("patrol, sums", megabytes, || {
        patrol::isc::parse_summary_listing(&body).unwrap().len()
    });
    report("patrol, tokens", megabytes, || {
        patrol::isc::parse_token_listing(&body).unwrap().len()
    });
}

/// Checks the body as UTF-8, as patrol checks each chunk before it parses it.
fn text(body: &[u8]) -> &str {
    std::str::from_utf8(body).expect("the listing is UTF-8")
}

/// Times `parse` [`REPETITIONS`] times and prints the first time, the median and the
/// median's throughput.
fn report(name: &str, megabytes: f64, parse: impl Fn() -> usize) {
    let mut times: Vec<Duration> = (0..REPETITIONS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(parse());
            started.elapsed()
        })
        .collect();
    let first = times[0];
    times.sort();
    let median = times[REPETITIONS / 2];
    println!(
        "{name:<14} {:>12.1} {:>12.1} {:>10.0}",
        first.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        megabytes / median.as_secs_f64()
    );
}

/// Builds the body of a listing of `count` tokens. Each token has the fields of the API's
/// list response; about one in seven is never used and one in five never expires.
fn listing(count: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(count * 400);
    body.push(b'[');
    for number in 0..count {
        if number > 0 {
            body.push(b',');
        }
        let day = number % 28 + 1;
        let last_used = if number % 7 == 0 {
            "null".to_owned()
        } else {
            format!("\"2026-{:02}-{day:02}T08:15:30.123Z\"", number % 12 + 1)
        };
        let expiration = if number % 5 == 0 {
            "null".to_owned()
        } else {
            format!("\"2027-{:02}-{day:02}T00:00:00.000Z\"", number % 12 + 1)
        };
        let token = format!(
            r#"{{"id":"{number:032x}","name":"ci-export-{number:06}","scope":["sp:scopes:default","idn:sources:read"],"owner":{{"type":"IDENTITY","id":"2c9180{:026x}","name":"owner {:06}"}},"created":"2025-{:02}-{day:02}T12:00:00.000Z","lastUsed":{last_used},"managed":{},"accessTokenValiditySeconds":43200,"expirationDate":{expiration},"userAwareTokenNeverExpires":{}}}"#,
            number % 997,
            number % 997,
            number % 12 + 1,
            number % 50 == 0,
            expiration == "null",
        );
        body.extend_from_slice(token.as_bytes());
    }
    body.push(b']');
    body
}
