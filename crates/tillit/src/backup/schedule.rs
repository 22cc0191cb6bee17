//! Scheduled backups in `tillit serve` (`[backup]` in the configuration): at a time of day
//! or on an interval, each backup is written to `<dir>/tillit-<UTC time>`, verified right
//! away (restored into a scratch folder and checked, as `tillit backup verify` does), and
//! removed again if it does not verify; then old backups are pruned by the retention rule.
//! The outcome goes to `<dir>/status.json` (the admin's status page), to `/metrics` and to
//! the log; each backup is a `backup.created` event in every tenant's audit log (a failed
//! one that did not verify, too).

use super::retention::{self, Cadence};
use super::{Events, Keys, create, taken_at, verify};
use anyhow::Result;
use std::path::{Path, PathBuf};
use tillit_server::AppState;
use tillit_server::backup::BackupStatus;
use time::{Duration, OffsetDateTime};

const NAME_PREFIX: &str = "tillit-";
const STAMP: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// Starts the scheduler if `[backup] dir` is set.
pub fn spawn(state: &AppState) {
    let Some(dir) = state.config.backup.dir.clone() else {
        return;
    };
    let dir = state.config.resolve(&dir);
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = run(state, dir).await {
            tracing::error!(error = %format!("{e:#}"), "scheduled backups stopped");
        }
    });
}

fn cadence(state: &AppState) -> Result<Cadence> {
    let cfg = &state.config.backup;
    Ok(match cfg.interval_seconds {
        Some(s) => Cadence::Every(Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))),
        None => {
            let (hour, minute) = cfg.time_of_day()?;
            Cadence::Daily { hour, minute }
        }
    })
}

async fn run(state: AppState, dir: PathBuf) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let cadence = cadence(&state)?;
    let keys = Keys::of_server(&state.config.data_dir, state.keyring.clone())?;
    clean_leftovers(&state, &dir);
    let mut status = BackupStatus::load(&dir).unwrap_or_default();
    loop {
        let next = retention::next_run(cadence, state.clock.now(), status.last_attempt_at);
        status.next_at = Some(next);
        status.publish(&state.metrics);
        if let Err(e) = status.save(&dir) {
            tracing::warn!(error = %e, "cannot write the backup status");
        }
        let wait = next - state.clock.now();
        if wait > Duration::ZERO {
            tokio::time::sleep(wait.try_into().unwrap_or_default()).await;
        }
        run_once(&state, &keys, &dir, &mut status).await;
    }
}

/// One scheduled backup: create, verify, prune; the outcome into `status`.
async fn run_once(state: &AppState, keys: &Keys, dir: &Path, status: &mut BackupStatus) {
    let started = state.clock.now();
    status.last_attempt_at = Some(started);
    let stamp = started
        .to_offset(time::UtcOffset::UTC)
        .format(STAMP)
        .unwrap_or_default();
    let name = format!("{NAME_PREFIX}{stamp}");
    let out = dir.join(&name);
    let clock = state.clock.clone();
    let result = async {
        let created = create(
            &state.config.data_dir,
            keys,
            &state.config.audit.log_name,
            &out,
            clock.as_ref(),
            false,
            Events::Server(state),
        )
        .await?;
        if let Err(e) = verify(&out, keys, false).await {
            // Not a backup: it does not restore. Its tenants' logs say so.
            let _ = std::fs::remove_dir_all(&out);
            if let Err(l) = Events::Server(state)
                .removed(&created.manifest, clock.now())
                .await
            {
                tracing::error!(error = %format!("{l:#}"), "cannot log the removed backup");
            }
            return Err(e.context("the new backup does not verify"));
        }
        Ok::<_, anyhow::Error>(created)
    }
    .await;
    match result {
        Ok(c) => {
            status.last_success_at = taken_at(&c.manifest).or(Some(started));
            status.last_success = Some(name.clone());
            status.size_bytes = c.bytes;
            status.verified = Some(true);
            status.problem = None;
            let took = state.clock.now() - started;
            tracing::info!(
                backup = %name,
                bytes = c.bytes,
                seconds = took.as_seconds_f64(),
                "backup taken and verified"
            );
        }
        Err(e) => {
            let problem = format!("{e:#}");
            tracing::error!(backup = %name, error = %problem, "scheduled backup failed");
            status.verified = Some(false);
            status.problem = Some(problem);
        }
    }
    let (daily, weekly, monthly) = state.config.backup.retention();
    match prune(dir, daily, weekly, monthly) {
        Ok(kept) => status.kept = kept,
        Err(e) => tracing::warn!(error = %e, "pruning old backups failed"),
    }
}

/// The scheduled backups in `dir`: (name, time taken from the name).
fn list(dir: &Path) -> Result<Vec<(String, OffsetDateTime)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(stamp) = name.strip_prefix(NAME_PREFIX) else {
            continue;
        };
        if let Ok(at) = time::PrimitiveDateTime::parse(stamp, STAMP) {
            out.push((name, at.assume_utc()));
        }
    }
    Ok(out)
}

/// Removes the backups the retention rule does not keep; returns how many are kept.
fn prune(dir: &Path, daily: u32, weekly: u32, monthly: u32) -> Result<u64> {
    let all = list(dir)?;
    let keep = retention::keep(&all, daily, weekly, monthly);
    for (name, _) in &all {
        if !keep.contains(name) {
            match std::fs::remove_dir_all(dir.join(name)) {
                Ok(()) => tracing::info!(backup = %name, "old backup removed (retention)"),
                Err(e) => tracing::warn!(backup = %name, error = %e, "cannot remove an old backup"),
            }
        }
    }
    Ok(keep.len() as u64)
}

/// Staging folders a crash left behind (a plain copy in the data dir, a partial backup):
/// removed at start when older than an hour.
fn clean_leftovers(state: &AppState, dir: &Path) {
    let now = state.clock.now();
    let old = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .map(|t| now - OffsetDateTime::from(t) > Duration::hours(1))
            .unwrap_or(false)
    };
    for (folder, prefix) in [
        (state.config.data_dir.as_path(), ".backup-"),
        (dir, ".tillit-"),
    ] {
        let Ok(entries) = std::fs::read_dir(folder) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let partial = prefix == ".backup-" || name.contains(".partial-");
            if name.starts_with(prefix) && partial && old(&e.path()) {
                let _ = std::fs::remove_dir_all(e.path());
                tracing::info!(folder = %name, "removed what an interrupted backup left");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_removes_only_what_retention_drops_and_only_backups() {
        let dir = std::env::temp_dir().join(format!(
            "tillit-prune-{}-{}",
            std::process::id(),
            tillit_core::PersonId::random()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let t = time::macros::datetime!(2027-03-01 02:00 UTC);
        let mut names = Vec::new();
        for d in 0..10 {
            let name = format!(
                "{NAME_PREFIX}{}",
                (t - Duration::days(d)).format(STAMP).unwrap()
            );
            std::fs::create_dir(dir.join(&name)).unwrap();
            names.push(name);
        }
        std::fs::create_dir(dir.join("something-else")).unwrap();
        std::fs::write(dir.join("status.json"), "{}").unwrap();
        assert_eq!(list(&dir).unwrap().len(), 10);
        // 3 daily, 0 weekly, 0 monthly: the newest three stay.
        assert_eq!(prune(&dir, 3, 0, 0).unwrap(), 3);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            names[2].clone(),
            names[1].clone(),
            names[0].clone(),
            "something-else".into(),
            "status.json".into(),
        ];
        want.sort();
        assert_eq!(left, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
