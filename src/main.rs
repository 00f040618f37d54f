#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    patrol::cli::main()
}
