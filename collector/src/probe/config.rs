//! The probe file (`--probe-config probes.toml`): one `[[target]]` table per endpoint probed.
//! An API key is read from an environment variable or a file the table names, never from the
//! probe file itself. A bad table is refused at start with the file, line and reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::args::{self, ArgError};

const DEFAULT_PROMPT: &str = "Reply with the single word OK.";
const DEFAULT_MAX_TOKENS: u32 = 16;
const DEFAULT_INTERVAL_SECS: f64 = 30.0;
const DEFAULT_TIMEOUT_SECS: f64 = 10.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    target: Vec<toml::Spanned<TargetTable>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetTable {
    name: String,
    url: String,
    model: String,
    provider: Option<String>,
    prompt: Option<String>,
    max_tokens: Option<u32>,
    interval_secs: Option<f64>,
    timeout_secs: Option<f64>,
    stream: Option<bool>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    /// Refused: named only to say why.
    api_key: Option<toml::Value>,
}

/// Where a target's API key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    None,
    Env(String),
    File(PathBuf),
}

/// One probed endpoint, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    /// The API's base, such as `http://127.0.0.1:8000/v1`; the probe posts to
    /// `{url}/chat/completions`.
    pub url: String,
    pub model: String,
    pub provider: String,
    pub prompt: String,
    pub max_tokens: u32,
    pub interval: Duration,
    pub timeout: Duration,
    pub stream: bool,
    pub key: KeySource,
}

impl Target {
    /// The key, read now (a rotated file or variable is picked up at the next probe).
    pub fn api_key(&self) -> Result<Option<String>, String> {
        match &self.key {
            KeySource::None => Ok(None),
            KeySource::Env(name) => std::env::var(name)
                .map(|key| Some(key.trim().to_owned()))
                .map_err(|_| format!("the environment variable {name} is not set")),
            KeySource::File(path) => std::fs::read_to_string(path)
                .map(|key| Some(key.trim().to_owned()))
                .map_err(|error| format!("cannot read {}: {error}", path.display())),
        }
    }
}

/// Reads and checks the probe file.
pub fn load(path: &Path) -> Result<Vec<Target>, ArgError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ArgError::Read { path: path.to_owned(), source })?;
    parse(&text).map_err(|reason| ArgError::invalid("probe-config", format!("{}: {reason}", path.display())))
}

/// The targets of a probe file's text; the error names the line.
pub fn parse(text: &str) -> Result<Vec<Target>, String> {
    let file: File = toml::from_str(text).map_err(|error| args::one_line_toml_error(text, &error))?;
    let mut targets: Vec<Target> = Vec::new();
    for table in file.target {
        let at = args::line_and_column(text, table.span().start);
        let target = check(table.into_inner()).map_err(|reason| format!("{at}: {reason}"))?;
        if targets.iter().any(|known| known.name == target.name) {
            return Err(format!("{at}: a second target named {:?}", target.name));
        }
        targets.push(target);
    }
    Ok(targets)
}

fn check(table: TargetTable) -> Result<Target, String> {
    if table.api_key.is_some() {
        return Err(
            "api_key: keys are not read from this file; name them with api_key_env or api_key_file".into()
        );
    }
    for (field, value) in [("name", &table.name), ("model", &table.model)] {
        if value.trim().is_empty() {
            return Err(format!("{field} is empty"));
        }
    }
    let url = table.url.trim().trim_end_matches('/').to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.parse::<http::Uri>().is_err() {
        return Err(format!("url {:?} is not an http:// or https:// URL", table.url));
    }
    let seconds = |field: &'static str, value: f64| {
        args::seconds(field, value)
            .map_err(|_| format!("{field} = {value} is not a positive number of seconds"))
    };
    let interval = seconds("interval_secs", table.interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS))?;
    let timeout = seconds("timeout_secs", table.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS))?;
    if timeout > interval {
        return Err(format!("timeout_secs ({timeout:?}) is longer than interval_secs ({interval:?})"));
    }
    let max_tokens = table.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens == 0 {
        return Err("max_tokens is 0".into());
    }
    let key = match (table.api_key_env, table.api_key_file) {
        (Some(_), Some(_)) => return Err("api_key_env and api_key_file are both set; name one".into()),
        (Some(name), None) => KeySource::Env(name),
        (None, Some(path)) => KeySource::File(path),
        (None, None) => KeySource::None,
    };
    Ok(Target {
        name: table.name,
        url,
        model: table.model,
        provider: table.provider.unwrap_or_else(|| "openai".to_owned()),
        prompt: table.prompt.unwrap_or_else(|| DEFAULT_PROMPT.to_owned()),
        max_tokens,
        interval,
        timeout,
        stream: table.stream.unwrap_or(true),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_gets_its_defaults_and_its_key_source() {
        let targets = parse(
            "[[target]]\nname = \"vllm\"\nurl = \"http://127.0.0.1:8000/v1/\"\nmodel = \"llama\"\napi_key_env = \"KEY\"\n",
        )
        .expect("valid");
        assert_eq!(targets.len(), 1);
        let target = &targets[0];
        assert_eq!(target.url, "http://127.0.0.1:8000/v1");
        assert_eq!((target.max_tokens, target.stream), (DEFAULT_MAX_TOKENS, true));
        assert_eq!(target.interval, Duration::from_secs(30));
        assert_eq!(target.key, KeySource::Env("KEY".into()));
    }

    #[test]
    fn bad_tables_are_refused_with_their_line() {
        let head = "[[target]]\nname = \"a\"\nmodel = \"m\"\n";
        for (text, reason) in [
            (format!("{head}url = \"ftp://x\"\n"), "line 1, column 1: url"),
            (format!("{head}url = \"http://x\"\napi_key = \"sk-123\"\n"), "keys are not read from this file"),
            (format!("{head}url = \"http://x\"\ntimeout_secs = 60\n"), "longer than interval_secs"),
            (format!("{head}url = \"http://x\"\ninterval_secs = -1\n"), "interval_secs = -1"),
            (format!("{head}url = \"http://x\"\nmax_tokens = 0\n"), "max_tokens is 0"),
            (format!("{head}url = \"http://x\"\napi_key_env = \"A\"\napi_key_file = \"/k\"\n"), "both set"),
            (format!("{head}url = \"http://x\"\ncolour = \"red\"\n"), "line 5"),
            (
                format!("{head}url = \"http://x\"\n\n{head}url = \"http://y\"\n"),
                "line 6, column 1: a second target",
            ),
        ] {
            let error = parse(&text).expect_err(&text);
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_key_is_read_from_its_file_when_probed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-from-file\n").expect("write");
        let target = Target {
            key: KeySource::File(path),
            ..parse("[[target]]\nname = \"a\"\nurl = \"http://x\"\nmodel = \"m\"\n").expect("valid").remove(0)
        };
        assert_eq!(target.api_key().expect("read").as_deref(), Some("sk-from-file"));
        let missing = Target { key: KeySource::Env("AGENTRACE_TEST_NO_SUCH_VARIABLE".into()), ..target };
        assert!(missing.api_key().expect_err("unset").contains("AGENTRACE_TEST_NO_SUCH_VARIABLE"));
    }
}
