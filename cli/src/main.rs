//! Parse → run → exit code; nothing else.

use clap::{CommandFactory, Parser};

fn main() {
    // `COMPLETE=bash telltale …` (the shell asking for completions): answer
    // and exit before anything else runs.
    clap_complete::CompleteEnv::with_factory(telltale::commands::Cli::command).complete();
    let cli = telltale::commands::Cli::try_parse()
        .unwrap_or_else(|e| telltale::ui::usage::exit_with(e, std::env::args_os()));
    let printer = cli.global.printer();
    let code = match telltale::commands::run(cli) {
        Ok(()) => 0,
        Err(error) => {
            printer.report_error(&error);
            error.exit_code()
        }
    };
    std::process::exit(code);
}
