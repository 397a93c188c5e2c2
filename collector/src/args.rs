//! What every stage's command-line arguments share: the error their validation returns and
//! the parsers of the values they take (sizes, seconds, positive counts). A leaf: it depends on
//! nothing else in the collector. Each stage owns its `Args` (flags, environment variables and
//! defaults) and turns them into its own settings; `config.rs` gathers the stages' `Args` and
//! layers the configuration file under them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a stage's arguments are not usable; the message names the flag or the file.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("invalid value for --{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A file that a flag names cannot be used (a price table, a certificate); the error says
    /// which file and why.
    #[error(transparent)]
    File(Box<dyn std::error::Error + Send + Sync>),
}

impl ArgError {
    pub fn invalid(flag: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { flag, reason: reason.into() }
    }

    pub fn file(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::File(Box::new(error))
    }
}

/// `value`, when it is above zero.
pub fn positive<T: PartialOrd + Default + std::fmt::Display>(
    flag: &'static str,
    value: T,
) -> Result<T, ArgError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ArgError::invalid(flag, format!("{value} is not above zero")))
    }
}

/// A positive number of seconds.
pub fn seconds(flag: &'static str, value: f64) -> Result<Duration, ArgError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| ArgError::invalid(flag, format!("{value} is not a positive number of seconds")))
}

/// A positive size such as `512MiB` or `4096`.
pub fn size(flag: &'static str, text: &str, example: &str) -> Result<u64, ArgError> {
    parse_size(text)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| ArgError::invalid(flag, format!("{text:?} is not a size such as {example}")))
}

/// Parses `512MiB`, `2GiB`, `300M`, `1048576` (bytes; K/M/G and KiB/MiB/GiB are powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|character: char| !character.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// The trimmed contents of a file holding a secret (a bearer token), refused when empty.
pub fn read_secret(flag: &'static str, path: &Path) -> Result<Arc<str>, ArgError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ArgError::Read { path: path.to_owned(), source })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ArgError::invalid(flag, format!("{} is empty", path.display())));
    }
    Ok(Arc::from(secret))
}

/// Entries of a comma-separated list, trimmed, empty ones left out.
pub fn list(entries: Option<Vec<String>>) -> Vec<String> {
    entries
        .unwrap_or_default()
        .into_iter()
        .map(|entry| entry.trim().to_owned())
        .filter(|entry| !entry.is_empty())
        .collect()
}

/// toml's messages span several lines with a source excerpt; keep line, column and reason.
pub fn one_line_toml_error(text: &str, error: &toml::de::Error) -> String {
    let reason = error.message().trim().to_owned();
    match error.span() {
        Some(span) => format!("{}: {reason}", line_and_column(text, span.start)),
        None => reason,
    }
}

/// `line L, column C` of a byte offset in `text`, both counted from 1.
pub fn line_and_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |newline| before.len() - newline - 1) + 1;
    format!("line {line}, column {column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("64 kb"), Some(64 << 10));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5TB"), None);
        assert!(size("memory-limit", "0", "512MiB").is_err(), "zero is not a size");
    }

    #[test]
    fn numbers_are_checked_against_their_flag() {
        assert_eq!(positive("n", 3).expect("positive"), 3);
        let error = positive("queue-capacity", 0).expect_err("zero");
        assert_eq!(error.to_string(), "invalid value for --queue-capacity: 0 is not above zero");
        assert!(seconds("t", -1.0).is_err());
        assert!(seconds("t", 0.0).is_err());
        assert_eq!(seconds("t", 0.5).expect("valid"), Duration::from_millis(500));
    }

    #[test]
    fn positions_are_lines_and_columns_from_one() {
        assert_eq!(line_and_column("a = 1\nbc = 2\n", 8), "line 2, column 3");
        assert_eq!(line_and_column("x", 0), "line 1, column 1");
    }
}
