#![forbid(unsafe_code)]

use std::process::ExitCode;

/// The allocator: jemalloc, whose background thread returns freed pages to the system
/// about ten seconds after a run frees them, so that an idle daemon does not keep a large
/// run's memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    patrol::cli::main()
}
