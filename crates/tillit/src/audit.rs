//! `tillit audit verify` and `tillit audit export`.
//!
//! Verification recomputes every tenant's tree from the stored entries (opening each sealed
//! payload and checking it against its recorded hash), checks every checkpoint's signature
//! and that each matches the tree at its size (so consistency between any two follows), and
//! checks the stored tree head. The first problem is named with its sequence number. The
//! work is `tillit_server::audit::checkpoints::verify_tenant`, shared with the security
//! officer's "verify now" page.
//!
//! Export writes events of a period as JSON lines or RFC 5424 syslog messages, to a file,
//! standard output, or a syslog receiver over TLS (RFC 5425 framing).

use crate::Ctx;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::sync::Arc;
use tillit_core::TenantId;
use tillit_server::audit::checkpoints;
use tillit_store::{AuditEvent, AuditFilter, AuditOutcome};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What one tenant's verification found.
struct TenantResult {
    tenant: TenantId,
    outcome: Result<String, String>,
}

pub async fn verify(ctx: &Ctx, log_name: &str, only: Option<&str>) -> Result<()> {
    let verifier =
        checkpoints::verifier(&ctx.keyring, log_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tenants = ctx.store.audit_tenants().await?;
    if let Some(only) = only {
        let t = crate::admin::tenant(ctx, only).await?;
        tenants.retain(|x| *x == t.id);
    }
    let mut results = Vec::new();
    for tenant in tenants {
        let outcome = verify_tenant(ctx, log_name, &verifier, &tenant).await?;
        match &outcome {
            Ok(summary) => println!("tenant {tenant}: {summary}"),
            Err(problem) => println!("tenant {tenant}: FAILED: {problem}"),
        }
        results.push(TenantResult { tenant, outcome });
    }
    if results.is_empty() {
        println!("no audit log to verify");
    }
    if let Some(bad) = results.iter().find(|r| r.outcome.is_err()) {
        let problem = bad.outcome.as_ref().err().cloned().unwrap_or_default();
        bail!(
            "audit log of tenant {} does not verify: {problem}",
            bad.tenant
        );
    }
    Ok(())
}

async fn verify_tenant(
    ctx: &Ctx,
    log_name: &str,
    verifier: &tillit_audit::CheckpointVerifier,
    tenant: &TenantId,
) -> Result<Result<String, String>> {
    let head = ctx.store.audit_head(tenant).await?;
    let bar = ProgressBar::new(head.size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} entries {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(tenant.to_string());
    // The same verification as the security officer's "verify now".
    let b = bar.clone();
    let check = checkpoints::verify_tenant(&ctx.store, verifier, log_name, tenant, move |n| {
        b.set_position(n)
    })
    .await?;
    bar.finish_and_clear();
    Ok(if check.is_ok() {
        Ok(check.to_string())
    } else {
        Err(check.to_string())
    })
}

/// How exported events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 5424 syslog messages, one per line.
    Syslog,
}

pub struct ExportArgs<'a> {
    pub tenant: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub format: Format,
    pub out: Option<&'a std::path::Path>,
    pub syslog_tls: Option<&'a str>,
    pub syslog_ca: Option<&'a std::path::Path>,
}

fn instant(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339)
            .or_else(|_| {
                time::Date::parse(
                    s,
                    &time::macros::format_description!("[year]-[month]-[day]"),
                )
                .map(|d| d.midnight().assume_utc())
            })
            .map_err(|_| {
                anyhow::anyhow!("{name} must be a date (2026-11-30) or an RFC 3339 time, not {s:?}")
            })
    })
    .transpose()
}

pub async fn export(ctx: &Ctx, a: ExportArgs<'_>) -> Result<()> {
    let from = instant("--from", a.from)?;
    let to = instant("--to", a.to)?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        bail!("--from must be before --to");
    }
    if a.syslog_tls.is_some() && a.out.is_some() {
        bail!("give either --out or --syslog-tls, not both");
    }
    let tenants = match a.tenant {
        Some(t) => vec![crate::admin::tenant(ctx, t).await?.id],
        None => ctx.store.audit_tenants().await?,
    };
    let host = hostname();
    let mut sink: Box<dyn Sink> = match (a.syslog_tls, a.out) {
        (Some(addr), _) => Box::new(
            SyslogTls::connect(addr, a.syslog_ca)
                .await
                .with_context(|| format!("cannot reach the syslog receiver at {addr}"))?,
        ),
        (None, Some(path)) => {
            // Written to a temporary file and renamed, so a failed export leaves nothing half-written.
            Box::new(FileSink::create(path)?)
        }
        (None, None) => Box::new(StdoutSink(std::io::stdout())),
    };
    let format = if a.syslog_tls.is_some() {
        Format::Syslog
    } else {
        a.format
    };
    let mut counts = Vec::with_capacity(tenants.len());
    for t in &tenants {
        counts.push(export_tenant(ctx, t, from, to, format, &host, sink.as_mut()).await?);
    }
    sink.finish().await?;
    // Each export is itself in the tenant's log.
    let target = match (a.syslog_tls, a.out) {
        (Some(addr), _) => format!("syslog over TLS to {addr}"),
        (None, Some(p)) => format!("file {}", p.display()),
        (None, None) => "standard output".into(),
    };
    for (t, count) in tenants.iter().zip(&counts) {
        crate::admin::cli_event(
            ctx,
            t,
            tillit_store::SecurityEventKind::AuditExported,
            true,
            format!("{count} audit events exported to {target}"),
            "tillit audit export (CLI)",
        )
        .await?;
    }
    let n: u64 = counts.iter().sum();
    eprintln!("{n} audit events exported");
    Ok(())
}

async fn export_tenant(
    ctx: &Ctx,
    tenant: &TenantId,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    format: Format,
    host: &str,
    sink: &mut dyn Sink,
) -> Result<u64> {
    let mut n = 0;
    let mut next = 0u64;
    loop {
        // Oldest first, a page at a time.
        let filter = AuditFilter {
            from,
            to,
            from_seq: Some(next),
            limit: 5_000,
            ..AuditFilter::default()
        };
        let page = ctx.store.audit_search(tenant, &filter).await?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for e in &page {
            let line = match format {
                Format::Jsonl => String::from_utf8(e.payload()).unwrap_or_default(),
                Format::Syslog => syslog_line(e, host),
            };
            sink.write_line(&line).await?;
            n += 1;
        }
    }
    Ok(n)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(' '))
        .unwrap_or_else(|| "-".into())
}

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424, 6.3.3).
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One event as an RFC 5424 message: facility 13 (log audit), severity notice for
/// successes and warning for denials and failures; the event's JSON is the message.
pub fn syslog_line(e: &AuditEvent, host: &str) -> String {
    let severity = match e.event.outcome {
        AuditOutcome::Success => 5,
        AuditOutcome::Denied | AuditOutcome::Failure => 4,
    };
    let pri = 13 * 8 + severity;
    let at = e
        .event
        .at
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "-".into());
    // MSGID: at most 32 printable ASCII characters.
    let msgid: String = e
        .event
        .action
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let mut sd = format!(
        "[tillit@32473 tenant=\"{}\" seq=\"{}\" outcome=\"{}\"",
        sd_escape(&e.event.tenant),
        e.seq,
        e.event.outcome.code()
    );
    if let Some(a) = &e.event.actor.person {
        sd.push_str(&format!(" actor=\"{}\"", sd_escape(a)));
    }
    if let Some(p) = &e.event.patient {
        sd.push_str(&format!(" patient=\"{}\"", sd_escape(p)));
    }
    sd.push(']');
    let msg = String::from_utf8(e.payload()).unwrap_or_default();
    format!("<{pri}>1 {at} {host} tillit - {msgid} {sd} {msg}")
}

#[async_trait::async_trait]
trait Sink: Send {
    async fn write_line(&mut self, line: &str) -> Result<()>;
    async fn finish(&mut self) -> Result<()>;
}

struct StdoutSink(std::io::Stdout);

#[async_trait::async_trait]
impl Sink for StdoutSink {
    async fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.0, "{line}")?;
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        self.0.flush()?;
        Ok(())
    }
}

struct FileSink {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl FileSink {
    fn create(path: &std::path::Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = std::path::PathBuf::from(tmp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
            file: std::io::BufWriter::new(file),
        })
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Left only when the export failed: nothing half-written stays behind.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[async_trait::async_trait]
impl Sink for FileSink {
    async fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}")?;
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(())
    }
}

/// RFC 5425: syslog over TLS, each message framed as `LENGTH SP MESSAGE`.
struct SyslogTls {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl SyslogTls {
    async fn connect(addr: &str, ca: Option<&std::path::Path>) -> Result<Self> {
        use rustls_pki_types::pem::PemObject;
        let (host, _) = addr
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("--syslog-tls takes HOST:PORT, not {addr:?}"))?;
        let mut roots = rustls::RootCertStore::empty();
        let Some(ca) = ca else {
            bail!(
                "give --syslog-ca FILE: the PEM certificate(s) the receiver's certificate is checked against"
            );
        };
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("cannot read {}", ca.display()))?
        {
            roots
                .add(cert.with_context(|| format!("{} holds a bad certificate", ca.display()))?)
                .context("the CA certificate was refused")?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS setup failed")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name =
            rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|_| anyhow::anyhow!("{host:?} is not a host name or address"))?;
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .context("the TLS handshake failed")?;
        Ok(Self { stream })
    }
}

#[async_trait::async_trait]
impl Sink for SyslogTls {
    async fn write_line(&mut self, line: &str) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let frame = format!("{} {line}", line.len());
        self.stream.write_all(frame.as_bytes()).await?;
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.flush().await?;
        self.stream.shutdown().await?;
        Ok(())
    }
}
