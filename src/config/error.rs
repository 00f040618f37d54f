//! Configuration errors that name the file, the line, the key and what is expected.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, or 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted key such as `rule[2].last_used_older_than`.
    pub key: String,
    pub message: String,
}

/// Error of loading a policy file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(path: &std::path::Path, problems: &[Problem]) -> String {
    let mut text = format!(
        "invalid configuration {} ({} problem{}):",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str(&format!("\n  {}", problem.display_in(path)));
    }
    text
}

impl Problem {
    pub fn display_in<'a>(&'a self, path: &'a std::path::Path) -> impl fmt::Display + 'a {
        struct Located<'a>(&'a Problem, &'a std::path::Path);
        impl fmt::Display for Located<'_> {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                let Located(problem, path) = self;
                if problem.line > 0 {
                    write!(
                        formatter,
                        "{}:{}:{}: ",
                        path.display(),
                        problem.line,
                        problem.column
                    )?;
                } else {
                    write!(formatter, "{}: ", path.display())?;
                }
                if problem.key.is_empty() {
                    write!(formatter, "{}", problem.message)
                } else {
                    write!(formatter, "{}: {}", problem.key, problem.message)
                }
            }
        }
        Located(self, path)
    }
}

/// Turns byte offsets of the file into lines and columns.
pub(crate) struct Locator<'a> {
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub fn problem(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        let (line, column) = self.position(span.start);
        Problem {
            line,
            column,
            key: key.into(),
            message: message.into(),
        }
    }
}
