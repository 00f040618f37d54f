//! Validation of the configured API URL and construction of every URL the client requests.
//!
//! The API URL must be `https://`, or `http://` on a loopback host (127.0.0.0/8, `::1`,
//! `localhost`) for the simulated tenant and tests. It carries no user credentials, query
//! or fragment, and may carry a path prefix, to which `/oauth/token` and the collection
//! path are appended. Token ids are percent-encoded as one path segment and ids that URL
//! normalization would drop (empty, `.`, `..`) are rejected, so a DELETE can only ever name
//! one token and never the collection itself. Query strings are form-encoded (space as
//! `+`), as the Go SDK sends them.

use std::net::IpAddr;

use reqwest::Url;

use super::error::bounded;
use super::{ApiVersion, IscError, ListFilter};

/// The URLs one client requests, derived once from the settings.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub token: Url,
    pub collection: Url,
}

impl Endpoints {
    pub fn new(api_url: &str, version: ApiVersion) -> Result<Self, IscError> {
        let base = parse_api_url(api_url)?;
        Ok(Endpoints {
            token: with_path_suffix(&base, "/oauth/token"),
            collection: with_path_suffix(&base, version.collection_path()),
        })
    }

    /// Returns the list URL with the filter and owner in its query string. `limit`,
    /// `offset`, `count` and `sorters` are never sent, because the PAT list endpoint does
    /// not document them.
    pub fn list(&self, filter: &ListFilter, owner_id: Option<&str>) -> Url {
        let mut url = self.collection.clone();
        let expression = filter.expression();
        if expression.is_some() || owner_id.is_some() {
            let mut query = url.query_pairs_mut();
            if let Some(expression) = &expression {
                query.append_pair("filters", expression);
            }
            if let Some(owner_id) = owner_id {
                query.append_pair("owner-id", owner_id);
            }
        }
        url
    }

    /// Returns the URL of one token, with `id` percent-encoded as a single path segment.
    pub fn token_by_id(&self, id: &str) -> Result<Url, IscError> {
        if id.is_empty() || id == "." || id == ".." {
            return Err(IscError::InvalidTokenId { id: id.to_owned() });
        }

        let mut url = self.collection.clone();
        url.path_segments_mut()
            .expect("http and https URLs always have a path")
            .push(id);

        // `push` encodes `%` and `/`, so no id becomes a dot segment after encoding. Check the
        // result anyway: a DELETE must name one segment below the collection, never more.
        let below_collection = url
            .path()
            .strip_prefix(self.collection.path())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|segment| !segment.is_empty() && !segment.contains('/'));
        if !below_collection {
            return Err(IscError::InvalidTokenId { id: id.to_owned() });
        }
        Ok(url)
    }
}

/// Parses and checks the configured API URL.
pub(crate) fn parse_api_url(api_url: &str) -> Result<Url, IscError> {
    let invalid = |url: &str, reason: &str| IscError::InvalidUrl {
        url: bounded(url, 200),
        reason: reason.to_owned(),
    };

    let mut url = Url::parse(api_url.trim()).map_err(|err| {
        invalid(
            api_url,
            &format!(
                "not an absolute URL ({err}); expected a form like https://acme.api.identitynow.com"
            ),
        )
    })?;

    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(invalid(
            url.as_str(),
            "user credentials in the URL are not allowed; set client_id and client_secret instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            url.as_str(),
            "a query or fragment is not allowed; give only the scheme, host, port and path prefix",
        ));
    }

    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(invalid(
                url.as_str(),
                "http is allowed only for loopback hosts (127.0.0.0/8, ::1, localhost); use https",
            ));
        }
        other => {
            return Err(invalid(
                url.as_str(),
                &format!("unsupported scheme {other:?}; use https"),
            ));
        }
    }
    if url.host().is_none() {
        return Err(invalid(url.as_str(), "missing host"));
    }

    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// Checks whether the URL's host is a loopback address or the name `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

fn with_path_suffix(base: &Url, suffix: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}{suffix}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn endpoints(version: ApiVersion) -> Endpoints {
        Endpoints::new("https://acme.api.identitynow.com", version).unwrap()
    }

    #[test]
    fn api_url_rejects_http_on_other_hosts() {
        for url in [
            "http://acme.api.identitynow.com",
            "http://10.0.0.1:8080",
            "http://[2001:db8::1]",
            "http://localhost.example.com",
            "http://0.0.0.0:8080",
        ] {
            let err = parse_api_url(url).unwrap_err();
            let IscError::InvalidUrl { reason, .. } = &err else {
                panic!("{url}: expected InvalidUrl, got {err:?}");
            };
            assert!(reason.contains("use https"), "{url}: {reason}");
        }
    }

    #[test]
    fn api_url_accepts_https_and_loopback_http() {
        for url in [
            "https://acme.api.identitynow.com",
            "https://acme.api.identitynow.com/",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://LOCALHOST",
        ] {
            assert!(parse_api_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn api_url_rejects_other_schemes_and_credentials() {
        let err = parse_api_url("ftp://acme.example.com").unwrap_err();
        assert!(err.to_string().contains("use https"), "{err}");

        let err = parse_api_url("https://user:pa55word@acme.example.com").unwrap_err();
        assert!(!err.to_string().contains("pa55word"), "{err}");
        assert!(err.to_string().contains("credentials"), "{err}");

        assert!(parse_api_url("https://acme.example.com?x=1").is_err());
        assert!(parse_api_url("acme.example.com").is_err());
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let endpoints = Endpoints::new("https://gw.example.com/isc/", ApiVersion::V3).unwrap();
        assert_eq!(
            endpoints.token.as_str(),
            "https://gw.example.com/isc/oauth/token"
        );
        assert_eq!(
            endpoints.collection.as_str(),
            "https://gw.example.com/isc/v3/personal-access-tokens"
        );
    }

    #[test]
    fn list_query_of_each_filter() {
        let endpoints = endpoints(ApiVersion::V3);
        let cutoff = Utc.with_ymd_and_hms(2026, 9, 2, 0, 0, 0).unwrap();

        let all = endpoints.list(&ListFilter::All, None);
        assert_eq!(all.query(), None);

        let older = endpoints.list(&ListFilter::LastUsedLe(cutoff), None);
        assert_eq!(
            older.query(),
            Some("filters=lastUsed+le+2026-09-02T00%3A00%3A00.000Z")
        );

        let never = endpoints.list(
            &ListFilter::LastUsedIsNull,
            Some("2c9180a46faadee4016fb4e018c20639"),
        );
        assert_eq!(
            never.query(),
            Some("filters=lastUsed+isnull&owner-id=2c9180a46faadee4016fb4e018c20639")
        );

        let mine = endpoints.list(&ListFilter::All, Some("me"));
        assert_eq!(mine.query(), Some("owner-id=me"));
    }

    #[test]
    fn token_url_encodes_id_as_one_segment() {
        let endpoints = endpoints(ApiVersion::V1);
        let url = endpoints
            .token_by_id("ef38f94347e94562b5bb8424a56397d8")
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://acme.api.identitynow.com/personal-access-tokens/v1/ef38f94347e94562b5bb8424a56397d8"
        );

        let url = endpoints.token_by_id("a/b?c#d %").unwrap();
        assert_eq!(url.path(), "/personal-access-tokens/v1/a%2Fb%3Fc%23d%20%25");
        assert_eq!(url.query(), None);
    }

    #[test]
    fn token_url_rejects_dot_segments() {
        let endpoints = endpoints(ApiVersion::V3);
        for id in ["", ".", ".."] {
            let err = endpoints.token_by_id(id).unwrap_err();
            assert!(
                matches!(err, IscError::InvalidTokenId { .. }),
                "{id:?}: {err:?}"
            );
        }
    }

    #[test]
    fn token_url_escapes_encoded_dots_and_slashes() {
        let endpoints = endpoints(ApiVersion::V3);
        let cases = [
            ("%2e%2e", "/v3/personal-access-tokens/%252e%252e"),
            (".%2E", "/v3/personal-access-tokens/.%252E"),
            ("a/..", "/v3/personal-access-tokens/a%2F.."),
            ("..%2f", "/v3/personal-access-tokens/..%252f"),
        ];
        for (id, path) in cases {
            assert_eq!(endpoints.token_by_id(id).unwrap().path(), path, "{id:?}");
        }
    }
}
