//! Where a tenant's client secret comes from, and reading it.
//!
//! The secret is read into a `SecretString` that never prints. Errors name the source
//! (variable, file or credential) and never include any part of the value.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// One of `client_secret_env`, `client_secret_file` or `client_secret_credential`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    /// A systemd credential, read from `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {name} is not set; export it or use client_secret_file")]
    EnvMissing { name: String },
    #[error("environment variable {name} is not valid UTF-8")]
    EnvNotUnicode { name: String },
    #[error("cannot read secret file {path}: {source}")]
    FileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {path} is not valid UTF-8")]
    FileNotUnicode { path: PathBuf },
    #[error(
        "systemd credential {name} needs $CREDENTIALS_DIRECTORY, which is not set; \
         add LoadCredential={name}:... or LoadCredentialEncrypted= to the unit"
    )]
    NoCredentialsDirectory { name: String },
    #[error("the secret from {source_description} is empty; put the auditor token's secret there")]
    Empty { source_description: String },
}

impl SecretSource {
    /// The policy file key that sets this source.
    pub fn key(&self) -> &'static str {
        match self {
            SecretSource::Env(_) => "client_secret_env",
            SecretSource::File(_) => "client_secret_file",
            SecretSource::Credential(_) => "client_secret_credential",
        }
    }

    /// Reads the secret. One trailing newline (`\n` or `\r\n`) is stripped, since files
    /// written by editors and `echo` end with one.
    pub fn load(&self) -> Result<SecretString, SecretError> {
        let value = match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => {
                    return Err(SecretError::EnvMissing { name: name.clone() });
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(SecretError::EnvNotUnicode { name: name.clone() });
                }
            },
            SecretSource::File(path) => read_file(path)?,
            SecretSource::Credential(name) => {
                let Some(directory) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
                    return Err(SecretError::NoCredentialsDirectory { name: name.clone() });
                };
                read_file(&Path::new(&directory).join(name))?
            }
        };
        let value = strip_one_newline(value);
        if value.is_empty() {
            return Err(SecretError::Empty {
                source_description: self.to_string(),
            });
        }
        Ok(SecretString::from(value))
    }
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(name) => write!(formatter, "environment variable {name}"),
            SecretSource::File(path) => write!(formatter, "file {}", path.display()),
            SecretSource::Credential(name) => write!(formatter, "systemd credential {name}"),
        }
    }
}

fn read_file(path: &Path) -> Result<String, SecretError> {
    let bytes = std::fs::read(path).map_err(|source| SecretError::FileRead {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| SecretError::FileNotUnicode {
        path: path.to_owned(),
    })
}

fn strip_one_newline(mut value: String) -> String {
    if value.ends_with("\r\n") {
        value.truncate(value.len() - 2);
    } else if value.ends_with('\n') {
        value.truncate(value.len() - 1);
    }
    value
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn secret_file_loses_one_trailing_newline() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        std::fs::write(&path, "s3cret\n\n").unwrap();
        let secret = SecretSource::File(path.clone()).load().unwrap();
        assert_eq!(secret.expose_secret(), "s3cret\n");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        let secret = SecretSource::File(path).load().unwrap();
        assert_eq!(secret.expose_secret(), "s3cret");
    }

    #[test]
    fn missing_secret_file_names_the_path() {
        let error = SecretSource::File("/nonexistent/patrol-secret".into())
            .load()
            .unwrap_err();
        assert!(error.to_string().contains("/nonexistent/patrol-secret"));
    }

    #[test]
    fn empty_secret_is_rejected() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        std::fs::write(&path, "\n").unwrap();
        let error = SecretSource::File(path).load().unwrap_err();
        assert!(matches!(error, SecretError::Empty { .. }));
    }
}
