//! The Helm binary, run on the chart with a private, empty configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{workspace_root, CHART};

/// Environment variable naming the helm binary.
pub const HELM_VAR: &str = "AGENTRACE_HELM";

/// A helm binary run from the workspace root, with its cache, configuration and data in a
/// temporary directory (no repositories, no plugins, nothing of the user's).
pub struct Helm {
    binary: PathBuf,
    home: tempfile::TempDir,
}

/// What one helm command printed.
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Helm {
    /// The binary `AGENTRACE_HELM` names; an error saying how to get one when it is unset or
    /// missing (`scripts/test` builds it into target/tools and sets the variable).
    pub fn from_env() -> Result<Helm> {
        let how = "scripts/test builds it with `GOBIN=$PWD/target/tools go install \
                   helm.sh/helm/v4/cmd/helm@v4.3.2` and sets AGENTRACE_HELM=$PWD/target/tools/helm";
        let Some(binary) = std::env::var_os(HELM_VAR) else {
            bail!("{HELM_VAR} is not set: it must name a helm binary ({how})");
        };
        let binary = PathBuf::from(binary);
        if !binary.is_file() {
            bail!("{HELM_VAR}={} is not a file ({how})", binary.display());
        }
        let home = tempfile::tempdir().context("temporary helm home")?;
        Ok(Helm { binary, home })
    }

    /// Runs `helm <args>` in the workspace root.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let home: &Path = self.home.path();
        let output = Command::new(&self.binary)
            .args(args)
            .current_dir(workspace_root())
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env_remove("KUBECONFIG")
            .output()
            .with_context(|| format!("running {} {}", self.binary.display(), args.join(" ")))?;
        Ok(Output {
            success: output.status.success(),
            stdout: String::from_utf8(output.stdout).context("helm's output is not UTF-8")?,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `helm <args>` and returns its standard output; an error with its messages when it
    /// fails.
    pub fn run_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.run(args)?;
        if !output.success {
            bail!("helm {} failed:\n{}{}", args.join(" "), output.stdout, output.stderr);
        }
        Ok(output.stdout)
    }

    /// `helm template <release> <chart> --namespace <namespace>` with `--set` overrides.
    pub fn template(&self, release: &str, namespace: &str, sets: &[&str]) -> Result<String> {
        let mut args = vec!["template", release, CHART, "--namespace", namespace];
        for set in sets {
            args.extend(["--set", set]);
        }
        self.run_ok(&args)
    }

    /// `helm lint <chart>` (with `--strict` when asked) with `--set` overrides.
    pub fn lint(&self, strict: bool, sets: &[&str]) -> Result<String> {
        let mut args = vec!["lint", CHART];
        if strict {
            args.push("--strict");
        }
        for set in sets {
            args.extend(["--set", set]);
        }
        self.run_ok(&args)
    }

    /// `helm version --short`, for messages.
    pub fn version(&self) -> Result<String> {
        Ok(self.run_ok(&["version", "--short"])?.trim().to_owned())
    }
}
