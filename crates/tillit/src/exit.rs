//! A tenant's exit: `tillit tenant export`, `tillit tenant delete` and
//! `tillit tenant verify-receipt` (see `docs/design/tenant-exit.md`).
//!
//! Export writes every current record of the tenant as FHIR Bulk Data NDJSON (one file per
//! type), the tenant's audit log (each entry with its leaf hash), its signed checkpoints, the
//! audit key and a Bulk Data manifest, each file encrypted with age to the recipients the
//! customer gave. Records are opened by Tillit itself (`Actor::System`), and every patient
//! compartment read gets an `export` event in the tenant's log before the export is complete.
//!
//! Delete destroys every key of the tenant (crypto-shredding), removes every row it has (its
//! audit log too, under a tombstone), and writes a deletion receipt signed with the
//! deployment's audit key. It needs the keys to itself (no server running), an explicit
//! `--confirm`, and never deletes the operator tenant.

use crate::Ctx;
use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use tillit_core::TenantId;
use tillit_server::audit::checkpoints;
use tillit_server::authz::{Action, Actor};
use tillit_server::fhir::service::{Fhir, format_instant};
use tillit_server::{AppState, Config};
use tillit_store::{
    AuditActor, AuditBatch, AuditClient, AuditFilter, AuditOutcome, NewAuditEvent,
    NewSecurityEvent, SecurityEventKind, StoredCheckpoint,
};

#[derive(clap::Subcommand)]
pub enum TenantCommand {
    /// Write all of a tenant's data (FHIR Bulk Data NDJSON), its audit log, checkpoints and
    /// audit key, encrypted with age to the customer's public key(s).
    Export {
        #[arg(long)]
        tenant: String,
        /// A folder that does not exist yet.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A file with the customer's age public key(s), one per line (age1...).
        #[arg(long, value_name = "PUBKEY_FILE")]
        recipient: PathBuf,
        #[arg(long, value_name = "DIR", default_value = "tillit-data")]
        data_dir: PathBuf,
        /// The server's configuration (for `audit.log_name`); the default name otherwise.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Destroy a tenant's keys, remove all its rows and write a signed deletion receipt.
    /// Stop the server first.
    Delete {
        #[arg(long)]
        tenant: String,
        /// Where to write the signed receipt (a file that does not exist yet).
        #[arg(long, value_name = "FILE")]
        receipt: PathBuf,
        /// The tenant's name (or id) again: nothing is deleted without it.
        #[arg(long, value_name = "TENANT")]
        confirm: Option<String>,
        #[arg(long, value_name = "DIR", default_value = "tillit-data")]
        data_dir: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check a deletion receipt's signature, final checkpoint and consistency proofs.
    VerifyReceipt {
        file: PathBuf,
        /// The audit key to check against (audit/key.txt of the export, or GET /audit/key).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Or this data dir's own audit key.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The export's decrypted manifest.json: check that the final log extends its log.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
}

pub async fn run(command: TenantCommand) -> Result<()> {
    match command {
        TenantCommand::Export {
            tenant,
            out,
            recipient,
            data_dir,
            config,
        } => {
            let config = Config::load(config.as_deref())?;
            let ctx = Ctx::open(&data_dir)?;
            export(
                &ctx,
                ExportArgs {
                    tenant: &tenant,
                    out: &out,
                    recipient: &recipient,
                    config,
                },
            )
            .await
        }
        TenantCommand::Delete {
            tenant,
            receipt,
            confirm,
            data_dir,
            config,
        } => {
            let config = Config::load(config.as_deref())?;
            let ctx = Ctx::open(&data_dir)?;
            delete(
                &ctx,
                DeleteArgs {
                    tenant: &tenant,
                    receipt: &receipt,
                    confirm: confirm.as_deref(),
                    config,
                },
            )
            .await
        }
        TenantCommand::VerifyReceipt {
            file,
            key,
            data_dir,
            config,
            manifest,
        } => {
            verify_receipt(VerifyArgs {
                file: &file,
                key: key.as_deref(),
                data_dir: data_dir.as_deref(),
                config: config.as_deref(),
                manifest: manifest.as_deref(),
            })
            .await
        }
    }
}

/// Records read per page.
const PAGE: u32 = 500;
/// Checkpoints, besides those of exports, whose consistency with the final tree a receipt
/// proves.
const RECENT_CHECKPOINTS: usize = 8;
const AGENT_EXPORT: &str = "tillit tenant export (CLI)";
const AGENT_DELETE: &str = "tillit tenant delete (CLI)";

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {what}  {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn app_state(ctx: &Ctx, config: Config) -> AppState {
    AppState::new(
        ctx.store.clone(),
        ctx.clock.clone(),
        ctx.hasher.clone(),
        ctx.keyring.clone(),
        config,
    )
}

// --- recipients and encrypted files ---

type Recipient = Box<dyn age::Recipient + Send + Sync>;

/// Reads age recipients, one per line (`#` comments and blank lines ignored): X25519 keys
/// (`age1...`) or hardware-held keys (`age1tag...`, `age1tagpq...`).
fn recipients(path: &Path) -> Result<(Vec<Recipient>, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the recipient file {}", path.display()))?;
    let (mut out, mut shown) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        if l.starts_with("AGE-SECRET-KEY-") {
            bail!(
                "{at} is a secret key; give the public key instead (`age-keygen -y KEYFILE` prints it)"
            );
        }
        let r: Recipient = if let Ok(r) = l.parse::<age::x25519::Recipient>() {
            Box::new(r)
        } else if let Ok(r) = l.parse::<age::tagpq::Recipient>() {
            Box::new(r)
        } else if let Ok(r) = l.parse::<age::tag::Recipient>() {
            Box::new(r)
        } else {
            bail!("{at} is not an age public key (expected one starting with age1)");
        };
        out.push(r);
        shown.push(l.to_string());
    }
    if out.is_empty() {
        bail!(
            "{} holds no age public key; make one with `age-keygen -o key.txt` and give the line after 'public key:'",
            path.display()
        );
    }
    Ok((out, shown))
}

/// One file of the export, encrypted as it is written (`<name>.age`).
struct Sealed {
    path: PathBuf,
    writer: age::stream::StreamWriter<std::io::BufWriter<std::fs::File>>,
}

impl Sealed {
    fn create(dir: &Path, name: &str, to: &[Recipient]) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(format!("{name}.age"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let enc = age::Encryptor::with_recipients(to.iter().map(|r| r.as_ref() as _))
            .map_err(|e| anyhow!("cannot encrypt to these recipients: {e}"))?;
        let writer = enc.wrap_output(std::io::BufWriter::with_capacity(1 << 16, file))?;
        Ok(Self { path, writer })
    }

    fn line(&mut self, v: &Value) -> Result<()> {
        serde_json::to_writer(&mut self.writer, v)?;
        self.writer.write_all(b"\n")?;
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let file = self
            .writer
            .finish()?
            .into_inner()
            .map_err(|e| anyhow!("cannot write {}: {}", self.path.display(), e.error()))?;
        file.sync_all()?;
        Ok(())
    }
}

/// A folder being written; removed unless it was completed.
struct Partial {
    dir: PathBuf,
    done: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

// --- export ---

pub struct ExportArgs<'a> {
    pub tenant: &'a str,
    pub out: &'a Path,
    pub recipient: &'a Path,
    pub config: Config,
}

/// Per patient compartment (None: outside any), what the export read.
#[derive(Default)]
struct Read {
    count: u32,
    categories: BTreeSet<String>,
}

pub async fn export(ctx: &Ctx, a: ExportArgs<'_>) -> Result<()> {
    let tenant = crate::admin::tenant(ctx, a.tenant).await?;
    let (to, recipient_keys) = recipients(a.recipient)?;
    if a.out.exists() {
        bail!(
            "{} already exists; give a folder that does not exist yet",
            a.out.display()
        );
    }
    let name = a
        .out
        .file_name()
        .ok_or_else(|| anyhow!("--out must name a folder"))?
        .to_string_lossy()
        .into_owned();
    let parent = match a.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!("{} does not exist", parent.display());
    }
    let tmp = parent.join(format!(
        ".{name}.partial-{}",
        tillit_server::fhir::service::new_id()
    ));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
    }
    let mut partial = Partial {
        dir: tmp.clone(),
        done: false,
    };
    let log_name = a.config.audit.log_name.clone();
    let state = app_state(ctx, a.config);
    let fhir = Fhir::new(
        &state,
        Actor::System {
            tenant: &tenant.id,
            purpose: "export",
        },
    );
    let started = ctx.clock_now();

    // The records, type by type.
    let mut types = Vec::new();
    for rt in tillit_fhir::resources::SERVED {
        if tillit_fhir::resources::READ_ONLY.contains(rt) {
            continue;
        }
        let n = ctx.store.count_resources(&tenant.id, rt).await?;
        if n > 0 {
            types.push((*rt, n));
        }
    }
    let total: u64 = types.iter().map(|(_, n)| n).sum();
    let progress = bar(total, "records");
    let mut outputs = Vec::new();
    let mut errors = Vec::new();
    let mut reads: BTreeMap<Option<String>, Read> = BTreeMap::new();
    let mut exported = 0u64;
    for (rt, _) in &types {
        progress.set_message(rt.to_string());
        let mut file = Sealed::create(&tmp, &format!("{rt}.ndjson"), &to)?;
        let (mut after, mut count) = (None::<String>, 0u64);
        loop {
            let page = ctx
                .store
                .current_resources_page(&tenant.id, rt, after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.meta.id.clone());
            for v in &page {
                let permit = fhir
                    .authorize_meta(Action::Read, &v.meta)
                    .map_err(|d| anyhow!("{}: {}", d.policy, d.reason))?;
                match fhir.open(&permit, v) {
                    Ok(resource) => {
                        file.line(&resource)?;
                        count += 1;
                        let r = reads.entry(v.meta.patient.clone()).or_default();
                        r.count = r.count.saturating_add(1);
                        r.categories.insert(v.meta.category.clone());
                    }
                    // A patient's erased data (key destroyed) cannot be exported: say so.
                    Err(e) => errors.push(json!({
                        "resourceType": "OperationOutcome",
                        "issue": [{
                            "severity": "error",
                            "code": "deleted",
                            "diagnostics": format!("{}/{}: {}", v.meta.resource_type, v.meta.id, e.message()),
                        }],
                    })),
                }
                progress.inc(1);
            }
        }
        file.finish()?;
        exported += count;
        outputs.push(json!({"type": rt, "url": format!("{rt}.ndjson"), "count": count}));
    }
    progress.finish_and_clear();
    if !errors.is_empty() {
        let mut file = Sealed::create(&tmp, "errors.ndjson", &to)?;
        for e in &errors {
            file.line(e)?;
        }
        file.finish()?;
    }

    // The reads are in the tenant's log before the export can leave: one event per patient
    // compartment (what the patient's access log shows), then the export itself.
    let now = ctx.clock_now();
    let events: Vec<NewAuditEvent> = reads
        .into_iter()
        .map(|(patient, r)| NewAuditEvent {
            at: now,
            tenant: tenant.id.to_string(),
            action: "export".into(),
            outcome: AuditOutcome::Success,
            actor: AuditActor {
                kind: Some("system".into()),
                ..AuditActor::default()
            },
            patient,
            resource_type: None,
            resource_id: None,
            categories: r.categories.into_iter().collect(),
            count: r.count,
            basis: Some("system".into()),
            reason: Some("tenant exit: export of all the tenant's data".into()),
            policies: vec!["platform.system".into()],
            detail: None,
            client: AuditClient {
                ip: None,
                user_agent: Some(AGENT_EXPORT.into()),
                session: None,
            },
        })
        .collect();
    for chunk in events.chunks(2_000) {
        ctx.store
            .append_audit(AuditBatch {
                events: chunk.to_vec(),
                ..AuditBatch::default()
            })
            .await?;
    }
    let summary = tillit_server::audit::security_batch(
        NewSecurityEvent {
            at: now,
            tenant: Some(tenant.id.clone()),
            user: None,
            username: None,
            kind: SecurityEventKind::TenantExported,
            outcome_ok: true,
            detail: format!(
                "{exported} records of {} types exported, encrypted to {} recipient(s)",
                outputs.len(),
                recipient_keys.len()
            ),
            ip: None,
            user_agent: Some(AGENT_EXPORT.into()),
        },
        None,
        None,
        None,
    );
    ctx.store.append_audit(summary).await?;

    // The log as far as a checkpoint signed now, with every checkpoint up to it.
    let cp = checkpoint_now(&state, &tenant.id).await?;
    let verifier_key = checkpoints::signer(&ctx.keyring, &log_name)
        .map_err(|e| anyhow!("{e}"))?
        .verifier_key();
    let audit_events = write_audit_log(ctx, &tenant.id, cp.size, &tmp, &to).await?;
    let mut cps = Sealed::create(&tmp, "audit/checkpoints.ndjson", &to)?;
    let mut checkpoint_count = 0;
    for c in ctx.store.audit_checkpoints(&tenant.id).await? {
        if c.size <= cp.size {
            cps.line(&json!({"size": c.size, "at": format_instant(c.at), "note": c.note}))?;
            checkpoint_count += 1;
        }
    }
    cps.finish()?;
    let mut key = Sealed::create(&tmp, "audit/key.txt", &to)?;
    key.writer
        .write_all(format!("{verifier_key}\n").as_bytes())?;
    key.finish()?;
    let root = ctx.store.audit_root(&tenant.id, cp.size).await?;

    let manifest = json!({
        "transactionTime": format_instant(started),
        "request": format!("tillit:tenant/{}/$export", tenant.id),
        "requiresAccessToken": false,
        "output": outputs,
        "error": if errors.is_empty() { json!([]) } else {
            json!([{"type": "OperationOutcome", "url": "errors.ndjson", "count": errors.len()}])
        },
        "extension": {
            "tillit": {
                "format": "tillit-tenant-export/1",
                "tenant": {"id": tenant.id.to_string(), "name": tenant.name},
                "audit": {
                    "origin": checkpoints::origin(&log_name, &tenant.id),
                    "size": cp.size,
                    "root": hex::encode(root),
                    "checkpoint": cp.note,
                    "events": "audit/events.ndjson",
                    "event_count": audit_events,
                    "checkpoints": "audit/checkpoints.ndjson",
                    "checkpoint_count": checkpoint_count,
                    "key": "audit/key.txt",
                    "leaf": "SHA-256(0x00 || \"tillit/audit/v1\" 0x00 || tenant id || 0x00 || seq as 8 bytes big-endian || SHA-256(payload)) (RFC 9162 leaf)",
                },
                "recipients": recipient_keys,
            }
        }
    });
    let mut m = Sealed::create(&tmp, "manifest.json", &to)?;
    m.writer
        .write_all(serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    m.finish()?;
    write_readme(&tmp)?;
    sync_dir(&tmp.join("audit"));
    sync_dir(&tmp);
    std::fs::rename(&tmp, a.out)
        .with_context(|| format!("cannot move the export into {}", a.out.display()))?;
    partial.done = true;
    sync_dir(&parent);
    println!(
        "exported {exported} records ({} types), {audit_events} audit events and {checkpoint_count} checkpoints of tenant {} to {}, encrypted to {} recipient(s)",
        types.len(),
        tenant.name,
        a.out.display(),
        recipient_keys.len()
    );
    if !errors.is_empty() {
        println!(
            "{} record(s) could not be opened (erased); see errors.ndjson",
            errors.len()
        );
    }
    Ok(())
}

/// Signs a checkpoint of the log as it is now; a racing signer's checkpoint will do.
async fn checkpoint_now(state: &AppState, tenant: &TenantId) -> Result<StoredCheckpoint> {
    let head = state.store.audit_head(tenant).await?;
    for _ in 0..3 {
        match checkpoints::checkpoint_now(state, tenant).await {
            Ok(Some(cp)) if cp.size >= head.size => return Ok(cp),
            Ok(_) => {}
            Err(checkpoints::CheckpointFailure::Key(e)) => bail!("{e}"),
            // Signed at the same size by a running server at the same moment: use that one.
            Err(checkpoints::CheckpointFailure::Store(_)) => {}
        }
        if let Some(cp) = state.store.latest_audit_checkpoint(tenant).await?
            && cp.size >= head.size
        {
            return Ok(cp);
        }
    }
    bail!("no checkpoint of the audit log could be signed")
}

/// Writes entries `0..size` of the tenant's log as JSON lines; returns how many.
async fn write_audit_log(
    ctx: &Ctx,
    tenant: &TenantId,
    size: u64,
    dir: &Path,
    to: &[Recipient],
) -> Result<u64> {
    let mut file = Sealed::create(dir, "audit/events.ndjson", to)?;
    let progress = bar(size, "audit events");
    let (mut after, mut n) = (0i64, 0u64);
    'pages: loop {
        let page = ctx.store.audit_entries(tenant, after, 5_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for e in page {
            if e.seq >= size {
                break 'pages;
            }
            let payload = match e.payload {
                None => Value::Null,
                Some(Ok(p)) => Value::String(String::from_utf8(p).map_err(|_| {
                    anyhow!(
                        "audit entry {} is not UTF-8; run `tillit audit verify`",
                        e.seq
                    )
                })?),
                Some(Err(_)) => bail!(
                    "audit entry {} does not open (changed or moved); run `tillit audit verify`",
                    e.seq
                ),
            };
            let leaf = tillit_audit::verify::entry_leaf(tenant.as_str(), e.seq, &e.payload_hash);
            file.line(&json!({
                "seq": e.seq,
                "leaf_hash": hex::encode(leaf),
                "payload_hash": hex::encode(e.payload_hash),
                "payload": payload,
            }))?;
            n += 1;
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    file.finish()?;
    if n != size {
        bail!(
            "the audit log has {n} entries below the checkpoint at size {size}; run `tillit audit verify`"
        );
    }
    Ok(n)
}

fn write_readme(dir: &Path) -> Result<()> {
    let text = "\
This folder is a Tillit tenant export. Every file ending in .age is encrypted with age
(https://age-encryption.org) to the public key(s) you gave; nothing else here holds data.

Decrypt every file with your identity (the key file made by age-keygen):

    find . -name '*.age' -exec sh -c 'age -d -i key.txt -o \"${1%.age}\" \"$1\"' _ {} \\;

(rage works the same way.) Then:

    manifest.json            the FHIR Bulk Data manifest: output[] names one NDJSON file per
                             resource type with its count; extension.tillit.audit describes
                             the audit log and the tree head it verifies against
    <Type>.ndjson            FHIR R4 resources, one per line (current versions)
    errors.ndjson            OperationOutcomes for records that could not be exported (erased)
    audit/events.ndjson      the tenant's audit log: seq, leaf_hash, payload_hash, payload
    audit/checkpoints.ndjson signed checkpoints (C2SP tlog-checkpoint signed notes)
    audit/key.txt            the Ed25519 key that signs the checkpoints (and deletion receipts)
";
    std::fs::write(dir.join("README.txt"), text)?;
    Ok(())
}

// --- delete ---

pub struct DeleteArgs<'a> {
    pub tenant: &'a str,
    pub receipt: &'a Path,
    pub confirm: Option<&'a str>,
    pub config: Config,
}

pub async fn delete(ctx: &Ctx, a: DeleteArgs<'_>) -> Result<()> {
    if a.receipt.exists() {
        bail!(
            "{} already exists; give a new file for the receipt",
            a.receipt.display()
        );
    }
    let log_name = a.config.audit.log_name.clone();
    let live = crate::admin::tenant(ctx, a.tenant).await.ok();
    let tombstone = match &live {
        Some(_) => None,
        None => ctx.store.deleted_tenant(a.tenant).await?,
    };
    let (id, name) = match (&live, &tombstone) {
        (Some(t), _) => (t.id.clone(), t.name.clone()),
        (None, Some(d)) => (d.id.clone(), d.name.clone()),
        (None, None) => bail!("no tenant named '{}'", a.tenant),
    };
    if ctx.store.operator_tenant().await?.as_ref() == Some(&id) {
        bail!("{name} is the operator tenant (the platform's own); it cannot be deleted");
    }
    match a.confirm {
        Some(c) if c == name || c == id.as_str() => {}
        Some(c) => bail!("--confirm {c:?} does not name the tenant; give --confirm {name:?}"),
        None => bail!(
            "deleting tenant {name} destroys its keys and removes all its data for good (export it first: `tillit tenant export`); to go on, add --confirm {name:?}"
        ),
    }
    ctx.make_exclusive()?;
    let signer = checkpoints::signer(&ctx.keyring, &log_name).map_err(|e| anyhow!("{e}"))?;

    let (draft, removed, deleted_at) = match tombstone {
        Some(d) => {
            let draft = serde_json::from_str::<Value>(&d.draft)?;
            if draft.get("type").and_then(Value::as_str) == Some(crate::backup::DROPPED_ON_RESTORE)
            {
                bail!(
                    "tenant {name} was deleted at {} and dropped when this data dir was restored from a backup; its receipt is the one issued when it was deleted",
                    format_instant(d.deleted_at)
                );
            }
            println!(
                "tenant {name} was deleted at {} but not finished; finishing it",
                format_instant(d.deleted_at)
            );
            (draft, d.removed.rows, d.deleted_at)
        }
        None => {
            let state = app_state(ctx, a.config);
            let deleted_at = ctx.clock_now();
            let draft = prepare(ctx, &state, &id, &name, &log_name).await?;
            let removal = ctx
                .store
                .remove_tenant(&id, &serde_json::to_string(&draft)?, ctx.clock_now())
                .await
                .map_err(|e| {
                    anyhow!("removing the tenant's rows failed, nothing was removed: {e}")
                })?;
            (draft, removal.rows, deleted_at)
        }
    };
    // The keys last: until here a failure leaves the tenant readable (or, after the rows
    // went, a tombstone that this command finishes from). The keyring's ledger of deleted
    // tenants records it in the same vault transaction, so a restore of an older backup
    // drops the tenant (and tells it from a keyring that merely lacks its keys).
    ctx.keyring
        .delete_tenant(id.as_str(), deleted_at.unix_timestamp())
        .map_err(|e| anyhow!("destroying the tenant's keys failed (run this again): {e}"))?;
    let left = ctx.keyring.tenant_key_ids(id.as_str())?;
    if !left.is_empty() {
        bail!(
            "{} key(s) of the tenant are still in the keyring; run this again",
            left.len()
        );
    }
    let mut receipt = draft;
    let total: u64 = removed.values().sum();
    if let Some(obj) = receipt.as_object_mut() {
        obj.insert("rows_removed".into(), json!(removed));
        obj.insert("rows_removed_total".into(), json!(total));
    }
    let signed = crate::receipt::sign(receipt, &signer)?;
    let text = serde_json::to_string_pretty(&signed)?;
    write_atomically(a.receipt, text.as_bytes())?;
    let digest = hex::encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref(),
    );
    // The platform's own log remembers it: the operator tenant's tree when there is one.
    let operator = ctx.store.operator_tenant().await?;
    let ev = NewSecurityEvent {
        at: ctx.clock_now(),
        tenant: operator,
        user: None,
        username: None,
        kind: SecurityEventKind::TenantDeleted,
        outcome_ok: true,
        detail: format!(
            "tenant {name} ({id}) deleted: {total} rows removed, keys destroyed; receipt SHA-256 {digest}"
        ),
        ip: None,
        user_agent: Some(AGENT_DELETE.into()),
    };
    ctx.store
        .append_audit(tillit_server::audit::security_batch(ev, None, None, None))
        .await?;
    let keys = signed
        .pointer("/receipt/keys_destroyed")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    println!(
        "deleted tenant {name} ({id}): {keys} key(s) destroyed, {total} row(s) removed; signed receipt in {}",
        a.receipt.display()
    );
    Ok(())
}

/// Everything the receipt says that must be read before the tenant goes: the final tree
/// head (with a checkpoint signed now and proofs that it extends earlier checkpoints,
/// those of the exports first) and the keys that will be destroyed.
async fn prepare(
    ctx: &Ctx,
    state: &AppState,
    id: &TenantId,
    name: &str,
    log_name: &str,
) -> Result<Value> {
    let now = ctx.clock_now();
    // The deletion is the last event of the tenant's own log.
    ctx.store
        .append_audit(tillit_server::audit::security_batch(
            NewSecurityEvent {
                at: now,
                tenant: Some(id.clone()),
                user: None,
                username: None,
                kind: SecurityEventKind::TenantDeleted,
                outcome_ok: true,
                detail: "the tenant is deleted: its keys are destroyed and its rows removed".into(),
                ip: None,
                user_agent: Some(AGENT_DELETE.into()),
            },
            None,
            None,
            None,
        ))
        .await?;
    let cp = checkpoint_now(state, id).await?;
    let verifier = checkpoints::verifier(&ctx.keyring, log_name).map_err(|e| anyhow!("{e}"))?;
    let head = verifier
        .verify(&cp.note)
        .map_err(|e| anyhow!("the checkpoint just signed does not verify: {e}"))?;
    let stored: Vec<(u64, tillit_audit::Hash)> = ctx
        .store
        .audit_checkpoints(id)
        .await?
        .iter()
        .filter_map(|c| verifier.verify(&c.note).ok())
        .map(|c| (c.size, c.root))
        .filter(|(size, _)| *size > 0 && *size < head.size)
        .collect();
    // Every export's checkpoint (the first signed after its event), and the latest few.
    let exports = ctx
        .store
        .audit_search(
            id,
            &AuditFilter {
                action: Some(SecurityEventKind::TenantExported.code().into()),
                limit: 1_000,
                ..AuditFilter::default()
            },
        )
        .await?;
    let mut chosen: BTreeMap<u64, tillit_audit::Hash> = BTreeMap::new();
    for e in &exports {
        if let Some((size, root)) = stored.iter().find(|(size, _)| *size > e.seq) {
            chosen.insert(*size, *root);
        }
    }
    for (size, root) in stored.iter().rev().take(RECENT_CHECKPOINTS) {
        chosen.insert(*size, *root);
    }
    let mut consistency = Vec::new();
    for (size, root) in chosen {
        let proof = ctx
            .store
            .audit_consistency_proof(id, size, head.size)
            .await?;
        consistency.push(json!({
            "from_size": size,
            "from_root": hex::encode(root),
            "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
        }));
    }
    let mut keys = ctx.keyring.tenant_key_ids(id.as_str())?;
    keys.sort();
    Ok(json!({
        "type": "tillit-tenant-deletion-receipt",
        "version": 1,
        "tenant": {"id": id.to_string(), "name": name},
        "deleted_at": format_instant(now),
        "audit_log": {
            "origin": head.origin,
            "size": head.size,
            "root": hex::encode(head.root),
            "checkpoint": cp.note,
            "consistency": consistency,
            "kept": "no: the log was removed with the tenant's other rows; the tenant's export holds it, and this receipt its final tree head",
        },
        "keys_destroyed": keys,
    }))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(parent) = path.parent() {
        sync_dir(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        });
    }
    Ok(())
}

// --- verify-receipt ---

pub struct VerifyArgs<'a> {
    pub file: &'a Path,
    pub key: Option<&'a Path>,
    pub data_dir: Option<&'a Path>,
    pub config: Option<&'a Path>,
    pub manifest: Option<&'a Path>,
}

fn hash_hex(v: Option<&Value>, what: &str) -> Result<tillit_audit::Hash> {
    v.and_then(Value::as_str)
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <tillit_audit::Hash>::try_from(b).ok())
        .ok_or_else(|| anyhow!("the receipt's {what} is not a 32-byte hex hash"))
}

pub async fn verify_receipt(a: VerifyArgs<'_>) -> Result<()> {
    let text = std::fs::read_to_string(a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("the receipt is not JSON: {e}"))?;
    let (verifier, against) = match (a.key, a.data_dir) {
        (Some(k), _) => {
            let t = std::fs::read_to_string(k)
                .with_context(|| format!("cannot read {}", k.display()))?;
            let v = tillit_audit::CheckpointVerifier::parse(t.trim())
                .map_err(|e| anyhow!("{}: {e}", k.display()))?;
            (Some(v), format!("the key in {}", k.display()))
        }
        (None, Some(dir)) => {
            if !dir.join("tillit.db").is_file() {
                bail!("{} is not a Tillit data dir", dir.display());
            }
            let log_name = Config::load(a.config)?.audit.log_name;
            let ctx = Ctx::open(dir)?;
            let v = checkpoints::verifier(&ctx.keyring, &log_name).map_err(|e| anyhow!("{e}"))?;
            (Some(v), format!("the audit key of {}", dir.display()))
        }
        (None, None) => (None, "the key written in the receipt itself".to_string()),
    };
    let receipt = crate::receipt::verify(&doc, verifier.as_ref())?;
    let embedded_key = doc
        .pointer("/signature/key")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let own;
    let verifier = match &verifier {
        Some(v) => v,
        None => {
            own = tillit_audit::CheckpointVerifier::parse(embedded_key)
                .map_err(|e| anyhow!("the receipt's key is unusable: {e}"))?;
            &own
        }
    };
    // The final tree head: its checkpoint, and its proofs from earlier checkpoints.
    let log = receipt
        .get("audit_log")
        .ok_or_else(|| anyhow!("the receipt has no audit_log"))?;
    let size = log
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("the receipt's audit_log has no size"))?;
    let root = hash_hex(log.get("root"), "audit_log.root")?;
    let note = log
        .get("checkpoint")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let cp = verifier
        .verify(note)
        .map_err(|e| anyhow!("the receipt's final checkpoint does not verify: {e}"))?;
    if cp.size != size
        || cp.root != root
        || Some(cp.origin.as_str()) != log.get("origin").and_then(Value::as_str)
    {
        bail!("the receipt's final checkpoint does not match its audit_log size, root or origin");
    }
    let tenant_id = receipt
        .pointer("/tenant/id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !cp.origin.ends_with(&format!("/{tenant_id}")) {
        bail!("the receipt's checkpoint is of another tenant's log");
    }
    let mut proven: BTreeMap<u64, tillit_audit::Hash> = BTreeMap::new();
    for c in log
        .get("consistency")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let from = c
            .get("from_size")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("a consistency proof has no from_size"))?;
        let from_root = hash_hex(c.get("from_root"), "consistency from_root")?;
        let proof = c
            .get("proof")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|h| hash_hex(Some(h), "consistency proof"))
            .collect::<Result<Vec<_>>>()?;
        tillit_audit::merkle::verify_consistency(from, size, &from_root, &root, &proof)
            .map_err(|e| anyhow!("the consistency proof from size {from} does not verify: {e}"))?;
        proven.insert(from, from_root);
    }
    proven.insert(size, root);
    if let Some(m) = a.manifest {
        let text =
            std::fs::read_to_string(m).with_context(|| format!("cannot read {}", m.display()))?;
        let manifest: Value =
            serde_json::from_str(&text).map_err(|e| anyhow!("{} is not JSON: {e}", m.display()))?;
        let audit = manifest
            .pointer("/extension/tillit/audit")
            .ok_or_else(|| anyhow!("{} is not a Tillit export manifest", m.display()))?;
        if manifest
            .pointer("/extension/tillit/tenant/id")
            .and_then(Value::as_str)
            != Some(tenant_id)
        {
            bail!("the export in {} is of another tenant", m.display());
        }
        let esize = audit.get("size").and_then(Value::as_u64).unwrap_or(0);
        let eroot = hash_hex(audit.get("root"), "export's audit root")?;
        if proven.get(&esize) != Some(&eroot) {
            bail!(
                "the receipt does not prove that the final log extends the exported one (size {esize})"
            );
        }
        println!(
            "the final log extends the exported log (size {esize}): the export holds every event up to it"
        );
    }
    let keys = receipt
        .get("keys_destroyed")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    println!(
        "receipt ok: tenant {} ({tenant_id}) deleted at {}; {keys} key(s) destroyed, {} row(s) removed; final audit log size {size}, root {}; signed with {against} ({})",
        receipt
            .pointer("/tenant/name")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        receipt
            .get("deleted_at")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        receipt
            .get("rows_removed_total")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        hex::encode(root),
        verifier.key_text(),
    );
    Ok(())
}
