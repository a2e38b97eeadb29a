//! External validators (promtool, amtool), run through [`crate::process`].

use std::path::Path;

use crate::process::{ProcessError, Program};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{tool}` was not found on PATH")]
    NotFound { tool: String },
    #[error("could not run `{tool}`")]
    Spawn {
        tool: String,
        #[source]
        source: ProcessError,
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
    let program = Program::new(tool).args(args).current_dir(cwd);
    let finished = program.output().map_err(|e| match e {
        ProcessError::NotFound { .. } => ToolError::NotFound {
            tool: tool.to_string(),
        },
        other => ToolError::Spawn {
            tool: tool.to_string(),
            source: other,
        },
    })?;
    let text = format!("{}{}", finished.stdout_text(), finished.stderr_text());
    if finished.status.success() {
        Ok(text)
    } else {
        // The tail is what says what went wrong; promtool prints a lot before it.
        Err(ToolError::Failed {
            command: format!("{tool} {}", args.join(" ")),
            status: finished.status.to_string(),
            output: crate::process::tail(&text, 40),
        })
    }
}
