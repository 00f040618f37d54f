#![forbid(unsafe_code)]

use std::process::ExitCode;

/// The allocator: jemalloc, whose background threads return most pages a run frees to the
/// system within 10 seconds and the rest within about 20, so that an idle daemon does not
/// keep a large run's memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    patrol::cli::main()
}
