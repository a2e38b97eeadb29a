//! Parse → run → exit code; nothing else.

use clap::Parser;

fn main() {
    let cli = telltale::commands::Cli::parse();
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
