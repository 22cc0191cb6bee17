//! `/manage/status`: the tenant's keys (which exist in the vault, the KEK's provider and check
//! value; never key material), its audit log (size, latest signed checkpoint) and backups.
//! Everything shown is read from the running system; what Tillit does not record is said to
//! be unrecorded rather than guessed.

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

#[derive(Template)]
#[template(path = "web/admin/status.html")]
struct StatusPage {
    l: Layout,
    tenant_created: String,
    keys: KeyInfo,
    audit: AuditInfo,
    /// Whether backups are configured. Always false until backups exist (issue 7): the
    /// configuration has no backup section, so there is nothing else to read.
    backups_configured: bool,
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
            backups_configured: false,
        })
    }
    .await;
    web.finish(r)
}
