//! `/manage/status`: the tenant's keys (which exist in the vault, the KEK's provider and check
//! value; never key material), its audit log (size, latest signed checkpoint) and backups.
//! Everything shown is read from the running system; what Tillit does not record is said to
//! be unrecorded rather than guessed. Backups are read from the scheduler's `status.json`.

use super::admin;
use crate::error::AppError;
use crate::web::{Layout, Web, render};
use askama::Template;
use axum::response::Response;
use tillit_crypto::keyring::TenantKeyStatus;

struct KeyInfo {
    status: TenantKeyStatus,
    /// The catalogue key naming the KEK's provider.
    provider: &'static str,
    check_value: String,
    /// When the key file was last written: created, or replaced by a rotation.
    kek_file_changed: Option<String>,
}

struct AuditInfo {
    size: u64,
    checkpoint: Option<(u64, String)>,
    /// Events after the latest checkpoint (signed within the interval).
    unsigned: u64,
    interval_seconds: u32,
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(super::human_size(0), "0 B");
        assert_eq!(super::human_size(999), "999 B");
        assert_eq!(super::human_size(1_500), "1.5 kB");
        assert_eq!(super::human_size(12_345_678), "12.3 MB");
    }
}

#[derive(Template)]
#[template(path = "web/admin/status.html")]
struct StatusPage {
    l: Layout,
    tenant_created: String,
    keys: KeyInfo,
    audit: AuditInfo,
    backups: BackupInfo,
}

/// Scheduled backups as the scheduler last recorded them (`<backup.dir>/status.json`).
struct BackupInfo {
    /// Whether `[backup]` names a folder (scheduled backups are on).
    configured: bool,
    /// Whether the scheduler has recorded anything yet.
    recorded: bool,
    last_success: Option<String>,
    size: String,
    /// `Some(true)`: the latest run verified; `Some(false)`: it failed.
    verified: Option<bool>,
    last_attempt: Option<String>,
    next: Option<String>,
    kept: u64,
}

/// A size in bytes as people read it (decimal units).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{bytes} {name}")
    } else {
        format!("{v:.1} {name}")
    }
}

async fn backup_info(web: &Web) -> BackupInfo {
    let tr = web.tr;
    let Some(dir) = web.state.config.backup.dir.clone() else {
        return BackupInfo {
            configured: false,
            recorded: false,
            last_success: None,
            size: String::new(),
            verified: None,
            last_attempt: None,
            next: None,
            kept: 0,
        };
    };
    let status = tokio::task::spawn_blocking(move || crate::backup::BackupStatus::load(&dir))
        .await
        .ok()
        .flatten();
    let recorded = status.is_some();
    let s = status.unwrap_or_default();
    BackupInfo {
        configured: true,
        recorded,
        last_success: s.last_success_at.map(|t| tr.datetime(t)),
        size: human_size(s.size_bytes),
        verified: s.verified,
        last_attempt: s.last_attempt_at.map(|t| tr.datetime(t)),
        next: s.next_at.map(|t| tr.datetime(t)),
        kept: s.kept,
    }
}

/// `GET /manage/status`
pub async fn page(web: Web) -> Response {
    let r = async {
        admin(&web)?;
        let tenant = &web.principal.tenant;
        let tr = web.tr;
        let keyring = web.state.keyring.clone();
        let tenant_id = tenant.id.to_string();
        let (status, check_value) = tokio::task::spawn_blocking(move || {
            keyring
                .tenant_key_status(&tenant_id)
                .map(|s| (s, keyring.kek_fingerprint()))
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))?;
        let keys_dir = web.state.config.data_dir.join("keys");
        let provider = match tokio::fs::read_to_string(keys_dir.join("provider"))
            .await
            .ok()
            .as_deref()
            .map(str::trim)
        {
            Some("passphrase") => "admin.status.kek_passphrase",
            Some("file") => "admin.status.kek_file",
            _ if tokio::fs::try_exists(keys_dir.join("kek.key"))
                .await
                .unwrap_or(false) =>
            {
                "admin.status.kek_file"
            }
            _ => "admin.status.kek_unknown",
        };
        let kek_file_changed = if provider == "admin.status.kek_file" {
            tokio::fs::metadata(keys_dir.join("kek.key"))
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .map(|t| tr.datetime(time::OffsetDateTime::from(t)))
        } else {
            None
        };
        let head = web.state.store.audit_head(&tenant.id).await?;
        let latest = web.state.store.latest_audit_checkpoint(&tenant.id).await?;
        let audit = AuditInfo {
            size: head.size,
            unsigned: head
                .size
                .saturating_sub(latest.as_ref().map_or(0, |c| c.size)),
            checkpoint: latest.map(|c| (c.size, tr.datetime(c.at))),
            interval_seconds: web.state.config.audit.checkpoint_seconds,
        };
        render(&StatusPage {
            l: web.layout(tr.t("admin.status.title")),
            tenant_created: tr.date(tenant.created_at),
            keys: KeyInfo {
                status,
                provider,
                check_value,
                kek_file_changed,
            },
            audit,
            backups: backup_info(&web).await,
        })
    }
    .await;
    web.finish(r)
}
