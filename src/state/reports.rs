//! The report files of recent runs: `<tenant>/reports/<run id>.json`, and `last.json`, the
//! newest report under a second name.
//!
//! Only the JSON report is stored. `patrol report` makes every other rendering (table, CSV,
//! the Markdown review pack) from it on demand. A tenant of 100,000 tokens thus stores about
//! 60 MB per run instead of 100 MB, and its runs spend no CPU on a review pack that may
//! never be opened. Each file is written atomically, so a reader sees a whole report or the
//! one before. Reports are rendered straight into their files, not held in memory.
//! `last.json` is a hard link to the newest run's file (a copy where the file system has no
//! hard links), made after the run's own file, so it never names a run whose file is
//! missing. The reports of the [`KEPT_RUNS`] newest runs are kept and older ones are
//! removed, with any `.md` review pack that a run stored beside its JSON report before
//! review packs were made on demand. Run ids start with the run's UTC start time, so their
//! order is the runs' order. What the files contain is left to [`crate::report`]; this
//! module only stores what it renders.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{StateError, sync_dir, write_atomically_with};

/// The directory of a tenant's reports, under its state directory.
pub const REPORTS_DIR: &str = "reports";

/// The newest run's JSON report.
pub const LAST_REPORT: &str = "last.json";

/// How many runs keep their report files.
pub const KEPT_RUNS: usize = 100;

/// Returns the reports directory of the tenant whose state is in `tenant_dir`.
pub fn reports_dir(tenant_dir: &Path) -> PathBuf {
    tenant_dir.join(REPORTS_DIR)
}

/// Writes the JSON report of run `run_id` with the given renderer, makes `last.json` name
/// it, and removes the reports of all but the [`KEPT_RUNS`] newest runs. Returns the path
/// of the report.
pub fn save_run_report(
    tenant_dir: &Path,
    run_id: &str,
    json: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PathBuf, StateError> {
    let dir = reports_dir(tenant_dir);
    if !is_run_id(run_id) {
        return Err(StateError::Write {
            path: dir.join(run_id),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "a run id is made of ASCII letters, digits and '-'",
            ),
        });
    }
    fs::create_dir_all(&dir).map_err(|source| StateError::CreateDir {
        path: dir.clone(),
        source,
    })?;

    let json_path = dir.join(format!("{run_id}.json"));
    write_atomically_with(&json_path, json)?;
    link_last(&dir, &json_path)?;
    prune(&dir, KEPT_RUNS)?;
    Ok(json_path)
}

/// Points `last.json` at `json_path` by a hard link renamed over it, or by a copy where the
/// file system refuses hard links.
fn link_last(dir: &Path, json_path: &Path) -> Result<(), StateError> {
    let last = dir.join(LAST_REPORT);
    let temporary = last.with_extension("link");
    let error = |path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Write { path, source }
    };
    match fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StateError::Write {
                path: temporary,
                source,
            });
        }
    }
    if fs::hard_link(json_path, &temporary).is_err() {
        let mut source = fs::File::open(json_path).map_err(error(json_path))?;
        return write_atomically_with(&last, |out| io::copy(&mut source, out).map(drop));
    }
    fs::rename(&temporary, &last).map_err(error(&last))?;
    sync_dir(dir).map_err(error(dir))
}

/// Reads `last.json` of a tenant, or returns `None` when no run has written one.
pub fn read_last_report(tenant_dir: &Path) -> Result<Option<Vec<u8>>, StateError> {
    read_report(&reports_dir(tenant_dir).join(LAST_REPORT))
}

/// Reads the report of run `run_id` of a tenant, or returns `None` when the tenant keeps no
/// report of that run. A run id with other characters than ASCII letters, digits and `-`
/// names no run, and neither does `last`, the stem of [`LAST_REPORT`].
pub fn read_run_report(tenant_dir: &Path, run_id: &str) -> Result<Option<Vec<u8>>, StateError> {
    if !is_run_id(run_id) || Some(run_id) == LAST_REPORT.strip_suffix(".json") {
        return Ok(None);
    }
    read_report(&reports_dir(tenant_dir).join(format!("{run_id}.json")))
}

/// Returns the ids of the runs whose reports a tenant keeps, oldest first.
pub fn kept_runs(tenant_dir: &Path) -> Result<Vec<String>, StateError> {
    let dir = reports_dir(tenant_dir);
    match run_ids(&dir) {
        Err(StateError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(Vec::new())
        }
        result => result,
    }
}

fn read_report(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn is_run_id(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// Returns the ids of the runs with a report in `dir`, oldest first. A run that left only a `.md`
/// review pack counts too, so that pruning removes it.
fn run_ids(dir: &Path) -> Result<Vec<String>, StateError> {
    let read_error = |source| StateError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut runs: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let name = entry.map_err(read_error)?.file_name();
        let Some(name) = name.to_str() else { continue };
        let stem = name
            .strip_suffix(".json")
            .or_else(|| name.strip_suffix(".md"));
        if let Some(stem) = stem
            && is_run_id(stem)
            && name != LAST_REPORT
            && !runs.iter().any(|run| run == stem)
        {
            runs.push(stem.to_owned());
        }
    }
    runs.sort();
    Ok(runs)
}

/// Removes the `.json` report, and any `.md` review pack, of every run but the `keep`
/// newest.
fn prune(dir: &Path, keep: usize) -> Result<(), StateError> {
    let runs = run_ids(dir)?;
    let excess = runs.len().saturating_sub(keep);
    for run in &runs[..excess] {
        for extension in ["json", "md"] {
            let path = dir.join(format!("{run}.{extension}"));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StateError::Write { path, source }),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(bytes: &[u8]) -> impl FnOnce(&mut dyn Write) -> io::Result<()> + '_ {
        move |out| out.write_all(bytes)
    }

    #[test]
    fn saved_report_becomes_last() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_last_report(dir.path()).unwrap(), None);
        let path = save_run_report(dir.path(), "20261201T031500Z-0a", bytes(b"{}")).unwrap();
        assert!(path.ends_with("reports/20261201T031500Z-0a.json"));
        assert_eq!(read_last_report(dir.path()).unwrap().unwrap(), b"{}");
        let names: Vec<String> = fs::read_dir(reports_dir(dir.path()))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "only the JSON report and last.json: {names:?}"
        );
    }

    #[test]
    fn last_report_survives_pruning() {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..KEPT_RUNS + 2 {
            let run_id = format!("20261201T{index:06}Z-00");
            let body = format!("{{\"run\":{index}}}");
            save_run_report(dir.path(), &run_id, bytes(body.as_bytes())).unwrap();
        }
        let newest = format!("{{\"run\":{}}}", KEPT_RUNS + 1);
        assert_eq!(
            read_last_report(dir.path()).unwrap().unwrap(),
            newest.as_bytes()
        );
    }

    #[test]
    fn failed_rendering_keeps_the_previous_reports() {
        let dir = tempfile::tempdir().unwrap();
        save_run_report(dir.path(), "20261201T000000Z-00", bytes(b"{}")).unwrap();
        let failing = |out: &mut dyn Write| {
            out.write_all(b"{\"partial\"")?;
            Err(io::Error::other("renderer failed"))
        };
        let error = save_run_report(dir.path(), "20261202T000000Z-00", failing);
        assert!(error.is_err());
        assert_eq!(read_last_report(dir.path()).unwrap().unwrap(), b"{}");
        let names: Vec<String> = fs::read_dir(reports_dir(dir.path()))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|name| !name.starts_with("20261202")),
            "{names:?}"
        );
    }

    #[test]
    fn only_newest_runs_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let reports = reports_dir(dir.path());
        fs::create_dir_all(&reports).unwrap();
        // Review packs that runs stored beside their reports before packs were made on
        // demand: the first with its report, the second alone.
        fs::write(reports.join("20261130T000000Z-00.md"), b"# old").unwrap();
        fs::write(reports.join("20261201T000000Z-00.md"), b"# old").unwrap();
        for index in 0..KEPT_RUNS + 2 {
            let run_id = format!("20261201T{index:06}Z-00");
            save_run_report(dir.path(), &run_id, bytes(b"{}")).unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(reports_dir(dir.path()))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), KEPT_RUNS + 1, "{names:?}");
        assert!(names.contains(&LAST_REPORT.to_owned()));
        assert!(!names.iter().any(|name| name.ends_with(".md")), "{names:?}");
        assert!(!names.contains(&"20261201T000001Z-00.json".to_owned()));
        assert!(names.contains(&"20261201T000002Z-00.json".to_owned()));
        assert_eq!(kept_runs(dir.path()).unwrap().len(), KEPT_RUNS);
    }

    #[test]
    fn kept_run_reads_by_id() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(kept_runs(dir.path()).unwrap(), Vec::<String>::new());
        save_run_report(dir.path(), "20261201T000000Z-0a", bytes(b"{\"run\":1}")).unwrap();
        save_run_report(dir.path(), "20261202T000000Z-0b", bytes(b"{\"run\":2}")).unwrap();
        assert_eq!(
            read_run_report(dir.path(), "20261201T000000Z-0a")
                .unwrap()
                .unwrap(),
            b"{\"run\":1}"
        );
        assert_eq!(
            read_run_report(dir.path(), "20261203T000000Z-0c").unwrap(),
            None
        );
        assert_eq!(read_run_report(dir.path(), "../last").unwrap(), None);
        assert_eq!(read_run_report(dir.path(), "last").unwrap(), None);
        assert_eq!(
            kept_runs(dir.path()).unwrap(),
            ["20261201T000000Z-0a", "20261202T000000Z-0b"]
        );
    }

    #[test]
    fn run_id_with_path_characters_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(save_run_report(dir.path(), "../escape", bytes(b"{}")).is_err());
        assert!(!reports_dir(dir.path()).join(LAST_REPORT).exists());
    }
}
