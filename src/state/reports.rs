//! The report files of recent runs: `<tenant>/reports/<run id>.json` and `.md`, and
//! `last.json`, the newest JSON report under a second name.
//!
//! Each file is written atomically, so a reader sees a whole report or the one before.
//! Reports are rendered straight into their files: the JSON report of a tenant of 100,000
//! tokens is about 80 MB, which is not held in memory. `last.json` is a hard link to the
//! newest run's JSON file (a copy where the file system has no hard links), made after the
//! run's own files, so it never names a run whose files are missing. The reports of the
//! [`KEPT_RUNS`] newest runs are kept and older ones are removed. Run ids start with the
//! run's UTC start time, so their order is the runs' order. What the files contain is left
//! to [`crate::report`]; this module only stores what it renders.

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

/// Writes the JSON and Markdown reports of run `run_id` with the given renderers, makes
/// `last.json` name the JSON report, and removes the reports of all but the [`KEPT_RUNS`]
/// newest runs. Returns the path of the JSON report.
pub fn save_run_reports(
    tenant_dir: &Path,
    run_id: &str,
    json: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    markdown: impl FnOnce(&mut dyn Write) -> io::Result<()>,
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
    write_atomically_with(&dir.join(format!("{run_id}.md")), markdown)?;
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
    let path = reports_dir(tenant_dir).join(LAST_REPORT);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Read { path, source }),
    }
}

fn is_run_id(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// Removes the `.json` and `.md` reports of every run but the `keep` newest.
fn prune(dir: &Path, keep: usize) -> Result<(), StateError> {
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
        let path = save_run_reports(
            dir.path(),
            "20261201T031500Z-0a",
            bytes(b"{}"),
            bytes(b"# r"),
        )
        .unwrap();
        assert!(path.ends_with("reports/20261201T031500Z-0a.json"));
        let reports = reports_dir(dir.path());
        assert_eq!(
            fs::read(reports.join("20261201T031500Z-0a.md")).unwrap(),
            b"# r"
        );
        assert_eq!(read_last_report(dir.path()).unwrap().unwrap(), b"{}");
    }

    #[test]
    fn last_report_survives_pruning() {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..KEPT_RUNS + 2 {
            let run_id = format!("20261201T{index:06}Z-00");
            let body = format!("{{\"run\":{index}}}");
            save_run_reports(dir.path(), &run_id, bytes(body.as_bytes()), bytes(b"")).unwrap();
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
        save_run_reports(dir.path(), "20261201T000000Z-00", bytes(b"{}"), bytes(b"")).unwrap();
        let failing = |out: &mut dyn Write| {
            out.write_all(b"{\"partial\"")?;
            Err(io::Error::other("renderer failed"))
        };
        let error = save_run_reports(dir.path(), "20261202T000000Z-00", failing, bytes(b""));
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
        for index in 0..KEPT_RUNS + 3 {
            let run_id = format!("20261201T{index:06}Z-00");
            save_run_reports(dir.path(), &run_id, bytes(b"{}"), bytes(b"")).unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(reports_dir(dir.path()))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), KEPT_RUNS * 2 + 1);
        assert!(names.contains(&LAST_REPORT.to_owned()));
        assert!(!names.contains(&"20261201T000002Z-00.json".to_owned()));
        assert!(names.contains(&"20261201T000003Z-00.json".to_owned()));
        assert!(names.contains(&"20261201T000003Z-00.md".to_owned()));
    }

    #[test]
    fn run_id_with_path_characters_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(save_run_reports(dir.path(), "../escape", bytes(b"{}"), bytes(b"")).is_err());
        assert!(!reports_dir(dir.path()).join(LAST_REPORT).exists());
    }
}
