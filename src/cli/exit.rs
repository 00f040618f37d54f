//! Exit codes, following sysexits(3) where one fits.

/// The run completed as configured.
pub const OK: u8 = 0;
/// A breaker tripped: the run deleted nothing on purpose. Not a sysexits code, because
/// none means "stopped by a safety check".
pub const BREAKER: u8 = 3;
/// Invalid command line (EX_USAGE).
pub const USAGE: u8 = 64;
/// Stored data is damaged: the audit log's hash chain is broken, the log of a tenant with
/// state is missing, or a stored report cannot be read (EX_DATAERR).
pub const DATA_ERROR: u8 = 65;
/// Something named on the command line does not exist: the token of `--explain` is not in
/// the tenant's listing, a tenant has no run report yet, or no audit record mentions the
/// token of `history --token` (EX_NOINPUT).
pub const NOT_FOUND: u8 = 66;
/// The tenant is unreachable or rejected the credentials (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// An internal error (EX_SOFTWARE).
pub const SOFTWARE: u8 = 70;
/// The state directory could not be created, locked or written (EX_IOERR).
pub const IO_ERROR: u8 = 74;
/// The run is incomplete: some deletes failed; running again retries them (EX_TEMPFAIL).
pub const INCOMPLETE: u8 = 75;
/// Invalid configuration (EX_CONFIG).
pub const CONFIG: u8 = 78;

/// Orders exit codes by severity, so that a run over several tenants exits with the worst.
pub fn severity(code: u8) -> u8 {
    match code {
        OK => 0,
        INCOMPLETE | NOT_FOUND => 1,
        BREAKER => 2,
        UNAVAILABLE => 3,
        IO_ERROR | DATA_ERROR => 4,
        SOFTWARE => 5,
        CONFIG => 6,
        USAGE => 7,
        _ => 5,
    }
}

/// Returns the more severe of two exit codes.
pub fn worst(current: u8, code: u8) -> u8 {
    if severity(code) > severity(current) {
        code
    } else {
        current
    }
}

/// Maps a failed write of a command's output to an exit code. A closed pipe, as with
/// `patrol report | head`, means the reader has what it wanted and is not an error.
pub fn output_error(error: &std::io::Error, what: &str) -> u8 {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return OK;
    }
    tracing::error!(%error, "cannot write {what} to stdout");
    IO_ERROR
}
