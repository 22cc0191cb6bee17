//! The state of scheduled backups (`[backup]` in the configuration), as the scheduler in
//! `tillit serve` records it in `<backup.dir>/status.json` after every run: what the admin's
//! status page shows and `/metrics` exports. The backups themselves are made by the `tillit`
//! binary (`tillit backup create`, and the same code on a schedule).

use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::path::Path;
use time::OffsetDateTime;

/// The file beside the backups that holds their status.
pub const STATUS_FILE: &str = "status.json";

/// What the latest scheduled backups did. Times are UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStatus {
    /// When the latest run started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When the latest backup that verified was taken.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    /// The folder name of the latest backup that verified.
    pub last_success: Option<String>,
    /// Its size on disk, in bytes.
    pub size_bytes: u64,
    /// Whether the latest run produced a backup that verified.
    pub verified: Option<bool>,
    /// Why the latest run failed (one line), if it did.
    pub problem: Option<String>,
    /// When the next run is due.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_at: Option<OffsetDateTime>,
    /// Backups kept after the latest pruning.
    pub kept: u64,
}

impl BackupStatus {
    /// The status in `dir`, if a scheduler has written one there.
    pub fn load(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(STATUS_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the status to `dir` (a temporary file renamed over the old one).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = dir.join(format!(".{STATUS_FILE}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let body = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(STATUS_FILE))
    }

    /// Sets the backup gauges of `/metrics`.
    pub fn publish(&self, metrics: &Metrics) {
        metrics.backup_last_success.set(
            self.last_success_at
                .map_or(0, OffsetDateTime::unix_timestamp),
        );
        metrics
            .backup_last_verified
            .set(i64::from(self.verified == Some(true)));
        metrics
            .backup_size_bytes
            .set(i64::try_from(self.size_bytes).unwrap_or(i64::MAX));
        metrics
            .backup_next
            .set(self.next_at.map_or(0, OffsetDateTime::unix_timestamp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_reaches_the_metrics() {
        let dir = std::env::temp_dir().join(format!(
            "tillit-backup-status-{}",
            tillit_core::PersonId::random()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(BackupStatus::load(&dir), None);
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let s = BackupStatus {
            last_attempt_at: Some(at),
            last_success_at: Some(at),
            last_success: Some("tillit-20270115T080000Z".into()),
            size_bytes: 4096,
            verified: Some(true),
            problem: None,
            next_at: Some(at + time::Duration::days(1)),
            kept: 3,
        };
        s.save(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(BackupStatus::load(&dir), Some(s.clone()));
        let m = Metrics::new();
        s.publish(&m);
        let text = m.render();
        assert!(
            text.contains("tillit_backup_last_success_timestamp_seconds 1800000000"),
            "{text}"
        );
        assert!(text.contains("tillit_backup_last_verified 1"), "{text}");
        assert!(text.contains("tillit_backup_size_bytes 4096"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
