//! The `filters` query parameter of the PAT list endpoint: parser and evaluation.
//!
//! The parser reads the general filter grammar of the ISC API (`and`, `or`, `not`,
//! parentheses, the operators `eq ne gt ge lt le co sw in ca isnull pr`, quoted strings and
//! bare literals), with precedence `not` over `and` over `or`. The PAT endpoint documents
//! only the field `lastUsed` with the operators `le` and `isnull`, so every other field or
//! operator is rejected after parsing with a message that names it, and the server responds
//! to such a filter with 400.
//!
//! Evaluation: `lastUsed le X` holds only for a token whose `lastUsed` is a date-time at or
//! before X (a null or absent `lastUsed` never matches), and `lastUsed isnull` holds when it
//! is null or absent. Date-time literals are RFC 3339, quoted or not, with any number of
//! fraction digits and `Z` or a numeric offset. Keywords and operators are lowercase only.
//! Query decoding (`+` and `%20` as space) happens before this module receives the text.

use std::fmt;

use chrono::{DateTime, Utc};

/// A parsed filter on the PAT list, reduced to what the endpoint supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `lastUsed le X`.
    LastUsedLe(DateTime<Utc>),
    /// `lastUsed isnull`.
    LastUsedIsNull,
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// Error of an invalid or unsupported filter expression, with a message for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

impl Filter {
    /// Parses the text of the `filters` query parameter.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let tokens = lex(text)?;
        let mut parser = Parser { tokens, next: 0 };
        let expression = parser.or()?;
        if let Some(token) = parser.peek() {
            return Err(FilterError(format!(
                "Invalid filter expression: unexpected {} at position {}",
                token.kind, token.position
            )));
        }
        Self::from_expression(expression)
    }

    /// Tests whether a token with this `lastUsed` (`None` for null or absent) passes the filter.
    pub fn matches(&self, last_used: Option<DateTime<Utc>>) -> bool {
        match self {
            Self::LastUsedLe(limit) => last_used.is_some_and(|used| used <= *limit),
            Self::LastUsedIsNull => last_used.is_none(),
            Self::Not(inner) => !inner.matches(last_used),
            Self::And(left, right) => left.matches(last_used) && right.matches(last_used),
            Self::Or(left, right) => left.matches(last_used) || right.matches(last_used),
        }
    }

    fn from_expression(expression: Expression) -> Result<Self, FilterError> {
        Ok(match expression {
            Expression::Not(inner) => Self::Not(Box::new(Self::from_expression(*inner)?)),
            Expression::And(left, right) => Self::And(
                Box::new(Self::from_expression(*left)?),
                Box::new(Self::from_expression(*right)?),
            ),
            Expression::Or(left, right) => Self::Or(
                Box::new(Self::from_expression(*left)?),
                Box::new(Self::from_expression(*right)?),
            ),
            Expression::Comparison {
                field,
                operator,
                values,
            } => Self::from_comparison(&field, &operator, values)?,
        })
    }

    fn from_comparison(
        field: &str,
        operator: &str,
        values: Vec<Literal>,
    ) -> Result<Self, FilterError> {
        if field != "lastUsed" {
            return Err(FilterError(format!(
                "Unsupported filter field '{field}': only 'lastUsed' can be filtered, \
                 with the operators 'le' and 'isnull'"
            )));
        }
        match operator {
            "isnull" => Ok(Self::LastUsedIsNull),
            "le" => {
                let literal = values.into_iter().next().ok_or_else(|| {
                    FilterError("Invalid filter expression: 'lastUsed le' needs a value".into())
                })?;
                let instant = DateTime::parse_from_rfc3339(&literal.text).map_err(|_| {
                    FilterError(format!(
                        "Invalid date-time '{}' for 'lastUsed le': expected ISO 8601 with a \
                         time zone, like 2023-02-05T10:59:27.214Z",
                        literal.text
                    ))
                })?;
                Ok(Self::LastUsedLe(instant.with_timezone(&Utc)))
            }
            other => Err(FilterError(format!(
                "Unsupported filter operator '{other}' for field 'lastUsed': \
                 the supported operators are 'le' and 'isnull'"
            ))),
        }
    }
}

/// The general grammar before the PAT endpoint's restrictions apply.
#[derive(Debug)]
enum Expression {
    Not(Box<Expression>),
    And(Box<Expression>, Box<Expression>),
    Or(Box<Expression>, Box<Expression>),
    Comparison {
        field: String,
        operator: String,
        values: Vec<Literal>,
    },
}

#[derive(Debug)]
struct Literal {
    text: String,
}

const BINARY_OPERATORS: [&str; 8] = ["eq", "ne", "gt", "ge", "lt", "le", "co", "sw"];
const LIST_OPERATORS: [&str; 2] = ["in", "ca"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    OpenParen,
    CloseParen,
    Comma,
    Word(String),
    Quoted(String),
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OpenParen => f.write_str("'('"),
            Self::CloseParen => f.write_str("')'"),
            Self::Comma => f.write_str("','"),
            Self::Word(word) => write!(f, "'{word}'"),
            Self::Quoted(text) => write!(f, "string \"{text}\""),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// Character offset in the filter text, for error messages.
    position: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;

    while i < chars.len() {
        let position = i;
        let kind = match chars[i] {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                TokenKind::OpenParen
            }
            ')' => {
                i += 1;
                TokenKind::CloseParen
            }
            ',' => {
                i += 1;
                TokenKind::Comma
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(FilterError(format!(
                                "Invalid filter expression: unterminated string at position \
                                 {position}"
                            )));
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            if let Some(&escaped) = chars.get(i + 1) {
                                value.push(escaped);
                            }
                            i += 2;
                        }
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                TokenKind::Quoted(value)
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | ',' | '"')
                {
                    i += 1;
                }
                TokenKind::Word(chars[start..i].iter().collect())
            }
        };
        tokens.push(Token { kind, position });
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if w == word)
    }

    fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn error_here(&self, expected: &str) -> FilterError {
        match self.peek() {
            Some(token) => FilterError(format!(
                "Invalid filter expression: expected {expected} at position {}, found {}",
                token.position, token.kind
            )),
            None => FilterError(format!(
                "Invalid filter expression: expected {expected}, found the end of the filter"
            )),
        }
    }

    fn or(&mut self) -> Result<Expression, FilterError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.advance();
            let right = self.and()?;
            left = Expression::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expression, FilterError> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.advance();
            let right = self.unary()?;
            left = Expression::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expression, FilterError> {
        if self.peek_word("not") {
            self.advance();
            return Ok(Expression::Not(Box::new(self.unary()?)));
        }
        if matches!(
            self.peek(),
            Some(Token {
                kind: TokenKind::OpenParen,
                ..
            })
        ) {
            self.advance();
            let inner = self.or()?;
            if !matches!(
                self.peek(),
                Some(Token {
                    kind: TokenKind::CloseParen,
                    ..
                })
            ) {
                return Err(self.error_here("')'"));
            }
            self.advance();
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expression, FilterError> {
        let field = self.field()?;

        // `pr field` is the one prefix operator.
        if field == "pr"
            && matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if !is_operator(w))
        {
            let field = self.field()?;
            return Ok(Expression::Comparison {
                field,
                operator: "pr".to_owned(),
                values: Vec::new(),
            });
        }

        let operator = match self.peek() {
            Some(Token {
                kind: TokenKind::Word(word),
                ..
            }) if is_operator(word) => word.clone(),
            Some(Token {
                kind: TokenKind::Word(word),
                position,
            }) => {
                return Err(FilterError(format!(
                    "Invalid filter expression: unknown operator '{word}' at position {position}"
                )));
            }
            _ => return Err(self.error_here("an operator")),
        };
        self.advance();

        let values = if operator == "isnull" {
            Vec::new()
        } else if LIST_OPERATORS.contains(&operator.as_str()) {
            self.value_list()?
        } else {
            vec![self.value()?]
        };
        Ok(Expression::Comparison {
            field,
            operator,
            values,
        })
    }

    fn field(&mut self) -> Result<String, FilterError> {
        match self.peek() {
            Some(Token {
                kind: TokenKind::Word(word),
                ..
            }) if is_field_name(word) => {
                let word = word.clone();
                self.advance();
                Ok(word)
            }
            _ => Err(self.error_here("a field name")),
        }
    }

    fn value(&mut self) -> Result<Literal, FilterError> {
        match self.peek() {
            Some(Token {
                kind: TokenKind::Word(text) | TokenKind::Quoted(text),
                ..
            }) => {
                let text = text.clone();
                self.advance();
                Ok(Literal { text })
            }
            _ => Err(self.error_here("a value")),
        }
    }

    fn value_list(&mut self) -> Result<Vec<Literal>, FilterError> {
        if !matches!(
            self.peek(),
            Some(Token {
                kind: TokenKind::OpenParen,
                ..
            })
        ) {
            return Err(self.error_here("'(' before a list of values"));
        }
        self.advance();
        let mut values = vec![self.value()?];
        loop {
            match self.peek() {
                Some(Token {
                    kind: TokenKind::Comma,
                    ..
                }) => {
                    self.advance();
                    values.push(self.value()?);
                }
                Some(Token {
                    kind: TokenKind::CloseParen,
                    ..
                }) => {
                    self.advance();
                    return Ok(values);
                }
                _ => return Err(self.error_here("',' or ')'")),
            }
        }
    }
}

fn is_operator(word: &str) -> bool {
    BINARY_OPERATORS.contains(&word) || LIST_OPERATORS.contains(&word) || word == "isnull"
}

fn is_field_name(word: &str) -> bool {
    !matches!(word, "and" | "or" | "not")
        && word.starts_with(|c: char| c.is_ascii_alphabetic())
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn le(text: &str) -> Filter {
        Filter::LastUsedLe(at(text))
    }

    #[test]
    fn parse_unquoted_spec_example() {
        assert_eq!(
            Filter::parse("lastUsed le 2023-02-05T10:59:27.214Z").unwrap(),
            le("2023-02-05T10:59:27.214Z")
        );
    }

    #[test]
    fn parse_quoted_offset_and_fraction_forms() {
        let expected = le("2023-02-05T10:59:27Z");
        for text in [
            r#"lastUsed le "2023-02-05T10:59:27Z""#,
            "lastUsed le 2023-02-05T10:59:27Z",
            "lastUsed le 2023-02-05T10:59:27.000Z",
            "lastUsed le 2023-02-05T10:59:27.000000000000Z",
            "lastUsed le 2023-02-05T12:59:27+02:00",
            r#"lastUsed le "2023-02-05T05:29:27.0-05:30""#,
        ] {
            assert_eq!(Filter::parse(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn parse_keeps_nanoseconds() {
        assert_eq!(
            Filter::parse("lastUsed le 2023-02-05T10:59:27.123456789Z").unwrap(),
            le("2023-02-05T10:59:27.123456789Z")
        );
    }

    #[test]
    fn parse_isnull_and_extra_whitespace() {
        assert_eq!(
            Filter::parse("  lastUsed   isnull ").unwrap(),
            Filter::LastUsedIsNull
        );
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        let a = "lastUsed isnull";
        let b = "lastUsed le 2020-01-01T00:00:00Z";
        let c = "lastUsed le 2021-01-01T00:00:00Z";
        let parsed = Filter::parse(&format!("not {a} or {b} and {c}")).unwrap();
        let expected = Filter::Or(
            Box::new(Filter::Not(Box::new(Filter::LastUsedIsNull))),
            Box::new(Filter::And(
                Box::new(le("2020-01-01T00:00:00Z")),
                Box::new(le("2021-01-01T00:00:00Z")),
            )),
        );
        assert_eq!(parsed, expected);
    }

    #[test]
    fn parentheses_override_precedence() {
        let parsed = Filter::parse(
            "not (lastUsed isnull or lastUsed le 2020-01-01T00:00:00Z) and lastUsed isnull",
        )
        .unwrap();
        let expected = Filter::And(
            Box::new(Filter::Not(Box::new(Filter::Or(
                Box::new(Filter::LastUsedIsNull),
                Box::new(le("2020-01-01T00:00:00Z")),
            )))),
            Box::new(Filter::LastUsedIsNull),
        );
        assert_eq!(parsed, expected);
    }

    #[test]
    fn le_never_matches_null() {
        let filter = le("2030-01-01T00:00:00Z");
        assert!(!filter.matches(None));
        assert!(filter.matches(Some(at("2029-12-31T23:59:59Z"))));
        assert!(filter.matches(Some(at("2030-01-01T00:00:00Z"))));
        assert!(!filter.matches(Some(at("2030-01-01T00:00:00.001Z"))));
    }

    #[test]
    fn or_combines_le_and_isnull() {
        let filter = Filter::parse("lastUsed le 2026-01-01T00:00:00Z or lastUsed isnull").unwrap();
        assert!(filter.matches(None));
        assert!(filter.matches(Some(at("2025-06-01T00:00:00Z"))));
        assert!(!filter.matches(Some(at("2026-06-01T00:00:00Z"))));
    }

    #[test]
    fn not_negates() {
        let filter = Filter::parse("not lastUsed isnull").unwrap();
        assert!(!filter.matches(None));
        assert!(filter.matches(Some(at("2025-06-01T00:00:00Z"))));
    }

    #[test]
    fn unsupported_field_is_named() {
        let error = Filter::parse(r#"name eq "x""#).unwrap_err();
        assert!(error.to_string().contains("field 'name'"), "{error}");
        let error =
            Filter::parse("lastUsed isnull or created le 2020-01-01T00:00:00Z").unwrap_err();
        assert!(error.to_string().contains("field 'created'"), "{error}");
    }

    #[test]
    fn unsupported_operator_is_named() {
        for (text, operator) in [
            ("lastUsed ge 2020-01-01T00:00:00Z", "'ge'"),
            ("lastUsed lt 2020-01-01T00:00:00Z", "'lt'"),
            (r#"lastUsed in ("a","b")"#, "'in'"),
            ("pr lastUsed", "'pr'"),
        ] {
            let error = Filter::parse(text).unwrap_err();
            assert!(
                error.to_string().contains(&format!("operator {operator}")),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn unknown_and_uppercase_operators_are_rejected() {
        let error = Filter::parse(r#"name rt "Test""#).unwrap_err();
        assert!(
            error.to_string().contains("unknown operator 'rt'"),
            "{error}"
        );
        let error = Filter::parse("lastUsed LE 2020-01-01T00:00:00Z").unwrap_err();
        assert!(
            error.to_string().contains("unknown operator 'LE'"),
            "{error}"
        );
        assert!(Filter::parse("lastUsed isnull AND lastUsed isnull").is_err());
    }

    #[test]
    fn invalid_date_times_are_rejected() {
        for text in [
            "lastUsed le yesterday",
            "lastUsed le 2020-01-01",
            "lastUsed le 2020-01-01T00:00:00",
            r#"lastUsed le "2020-01-01T00:00:00 02:00""#,
        ] {
            let error = Filter::parse(text).unwrap_err();
            assert!(
                error.to_string().contains("Invalid date-time"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn syntax_errors_are_rejected() {
        for text in [
            "",
            "lastUsed",
            "lastUsed le",
            "(lastUsed isnull",
            "lastUsed isnull)",
            "lastUsed isnull lastUsed isnull",
            r#"lastUsed le "2020"#,
            "and lastUsed isnull",
            "lastUsed isnull or",
        ] {
            assert!(Filter::parse(text).is_err(), "{text:?} parsed");
        }
    }
}
