//! Parse → run → exit code; nothing else.

use clap::Parser;

fn main() {
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
