//! External validators (promtool, amtool) via std::process, like jj's
//! git_subprocess: LC_ALL=C, stdin null, output captured, typed errors.

use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{tool}` was not found on PATH")]
    NotFound { tool: String },
    #[error("could not run `{tool}`")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` exited with {status}:\n{output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
}

impl ToolError {
    pub fn install_hint(tool: &str) -> &'static str {
        match tool {
            "promtool" => {
                "install it: apt-get install prometheus (Debian/Ubuntu), or download Prometheus from prometheus.io"
            }
            "amtool" => {
                "install it: apt-get install prometheus-alertmanager (Debian/Ubuntu), or download Alertmanager from prometheus.io"
            }
            _ => "install it and make sure it is on PATH",
        }
    }
}

/// Runs `tool args…` in `cwd`, returning stdout+stderr on success.
pub fn run(tool: &str, args: &[&str], cwd: &Path) -> Result<String, ToolError> {
    let output = Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ToolError::NotFound {
                tool: tool.to_string(),
            },
            _ => ToolError::Spawn {
                tool: tool.to_string(),
                source,
            },
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        // The tail is what says what went wrong; promtool prints a lot before it.
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        Err(ToolError::Failed {
            command: format!("{tool} {}", args.join(" ")),
            status: output.status.to_string(),
            output: tail,
        })
    }
}
