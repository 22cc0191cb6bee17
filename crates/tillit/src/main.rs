//! `tillit`: the one binary. `serve` and `demo` run the server; `admin` manages tenants,
//! people, roles and tokens on a data dir.
//!
//! Errors end the process with a non-zero exit and a one-line reason on stderr.

mod admin;
mod audit;
mod backup;
mod certs;
mod demo;
mod demo_records;
mod exit;
mod import;
mod keys;
mod people;
mod policy;
mod receipt;
mod stats;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tillit_core::{Clock, SystemClock};
use tillit_crypto::{Keyring, PasswordHasher};
use tillit_server::{AppState, Config};
use tillit_store::Store;
use tillit_store_sqlite::{SqliteKeyVault, SqliteStore};
use time::OffsetDateTime;

#[derive(Parser)]
#[command(
    name = "tillit",
    version,
    about = "Tillit: access control and audit for health data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server with a configuration file.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the server with demo data on a local data dir (seeded on first start).
    Demo {
        #[arg(long, value_name = "DIR", default_value = "tillit-data")]
        data_dir: PathBuf,
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Stop when standard input closes (for test harnesses, so no server outlives them).
        #[arg(long, hide = true)]
        exit_on_stdin_eof: bool,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check a tenant's policy set, or run decision test cases against it.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Load FHIR Bundles (a file or a folder, e.g. Synthea output) into a tenant.
    Import {
        /// A JSON file or a folder of them.
        path: PathBuf,
        #[arg(long, value_name = "DIR", default_value = "tillit-data")]
        data_dir: PathBuf,
        /// The tenant (name or id); may be left out when there is only one.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Verify or export the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Encrypted, signed backups: create (while the server runs), verify, restore.
    Backup {
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// A tenant's exit: export all its data encrypted to the customer, delete it with a
    /// signed receipt, check a receipt.
    Tenant {
        #[command(subcommand)]
        command: exit::TenantCommand,
    },
    /// Anonymous statistics of a tenant (small counts suppressed), as JSON or CSV.
    Stats(stats::StatsArgs),
    /// Manage tenants, org units, people, roles, care relationships and API tokens.
    Admin {
        #[arg(long, value_name = "DIR", default_value = "tillit-data", global = true)]
        data_dir: PathBuf,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-wrap every tenant key under a new key-encryption key (no data is re-encrypted).
    /// Stop the server first.
    Rotate {
        #[arg(long, value_name = "DIR", default_value = "tillit-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every tenant's tree, check every checkpoint's signature and root, and exit
    /// non-zero naming the first bad sequence number.
    Verify {
        #[arg(long, value_name = "DIR", default_value = "tillit-data")]
        data_dir: PathBuf,
        /// The server's configuration (for `audit.log_name`); the default name otherwise.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only this tenant (name or id).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Write the events of a period as JSON lines or RFC 5424 syslog, to a file, standard
    /// output, or a syslog receiver over TLS.
    Export {
        #[arg(long, value_name = "DIR", default_value = "tillit-data")]
        data_dir: PathBuf,
        /// Only this tenant (name or id); all tenants otherwise.
        #[arg(long)]
        tenant: Option<String>,
        /// From this date or RFC 3339 time (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Up to this date or RFC 3339 time (exclusive).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: audit::Format,
        /// Write to this file (replaced only once the export is complete).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Send RFC 5424 messages to a syslog receiver over TLS (RFC 5425), HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        syslog_tls: Option<String>,
        /// PEM certificate(s) to check the syslog receiver's certificate against.
        #[arg(long, value_name = "FILE")]
        syslog_ca: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file against the Tillit schema.
    Check { file: PathBuf },
    /// Run decision test cases (JSON) against a policy file (default: the shipped defaults).
    Test {
        cases: PathBuf,
        #[arg(long, value_name = "FILE")]
        policies: Option<PathBuf>,
    },
}

/// What commands share: the store, the clock, the password hasher and the keyring.
pub struct Ctx {
    /// Held for the life of the command: a shared lock that key rotation waits out.
    _keys: keys::KeyDir,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub hasher: Arc<PasswordHasher>,
    pub keyring: Arc<Keyring>,
    pub data_dir: PathBuf,
}

impl Ctx {
    pub fn open(data_dir: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        if !data_dir.exists() {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mode = std::fs::metadata(data_dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            eprintln!(
                "tillit: warning: data dir {} is accessible to group or others (mode {:o}); chmod 700 it",
                data_dir.display(),
                mode & 0o777
            );
        }
        let vault = Arc::new(SqliteKeyVault::open(
            &data_dir.join("keys").join("keyring.db"),
        )?);
        let (key_dir, keyring) = keys::open(data_dir, vault)?;
        let keyring = Arc::new(keyring);
        let cipher = Arc::new(tillit_store::KeyringCipher(keyring.clone()));
        let store = SqliteStore::open(&data_dir.join("tillit.db"), cipher)
            .map_err(|e| anyhow::anyhow!("{}: {e}", data_dir.join("tillit.db").display()))?;
        Ok(Self {
            _keys: key_dir,
            store: Arc::new(store),
            clock: Arc::new(SystemClock),
            hasher: Arc::new(PasswordHasher::new()?),
            keyring,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// Takes the keys for this command alone: refused while a server (or any other
    /// command) has them open.
    pub fn make_exclusive(&self) -> Result<()> {
        self._keys.make_exclusive()
    }

    pub fn clock_now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TILLIT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,hyper=warn,rustls=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tillit: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        // One line: the chain of causes, joined.
        let msg = e
            .chain()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        eprintln!("tillit: {msg}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config } => {
            init_tracing(true);
            let config = Config::load(Some(&config))?;
            serve(config, None).await
        }
        Command::Demo {
            data_dir,
            listen,
            exit_on_stdin_eof,
        } => {
            if exit_on_stdin_eof {
                std::thread::spawn(|| {
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                    std::process::exit(0);
                });
            }
            init_tracing(false);
            let mut config = Config::load(None)?;
            config.data_dir = data_dir.clone();
            config.server.listen = listen;
            // Owner-only from the start: the TLS material is written before the store opens.
            if !data_dir.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&data_dir)
                    .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
            }
            let tls = certs::ensure_demo_tls(&data_dir, SystemClock.now())?;
            config.tls.cert = tls.server_cert.clone();
            config.tls.key = tls.server_key.clone();
            serve(config, Some(tls)).await
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    data_dir,
                    config,
                    tenant,
                },
        } => {
            let log_name = Config::load(config.as_deref())?.audit.log_name;
            let ctx = Ctx::open(&data_dir)?;
            audit::verify(&ctx, &log_name, tenant.as_deref()).await
        }
        Command::Audit {
            command:
                AuditCommand::Export {
                    data_dir,
                    tenant,
                    from,
                    to,
                    format,
                    out,
                    syslog_tls,
                    syslog_ca,
                },
        } => {
            let ctx = Ctx::open(&data_dir)?;
            audit::export(
                &ctx,
                audit::ExportArgs {
                    tenant: tenant.as_deref(),
                    from: from.as_deref(),
                    to: to.as_deref(),
                    format,
                    out: out.as_deref(),
                    syslog_tls: syslog_tls.as_deref(),
                    syslog_ca: syslog_ca.as_deref(),
                },
            )
            .await
        }
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => policy::check(&file),
        Command::Policy {
            command: PolicyCommand::Test { cases, policies },
        } => policy::test(&cases, policies.as_deref()),
        Command::Keys {
            command: KeysCommand::Rotate { data_dir },
        } => {
            let vault = Arc::new(SqliteKeyVault::open(
                &data_dir.join("keys").join("keyring.db"),
            )?);
            let n = keys::rotate(&data_dir, vault)?;
            println!(
                "re-wrapped {n} key(s) under a new key-encryption key; no data was re-encrypted"
            );
            Ok(())
        }
        Command::Import {
            path,
            data_dir,
            tenant,
        } => {
            let ctx = Ctx::open(&data_dir)?;
            let mut config = Config::load(None)?;
            config.data_dir = data_dir;
            let report = import::run(&ctx, &path, tenant.as_deref(), config).await?;
            import::print(&report);
            if report.failed > 0 {
                anyhow::bail!(
                    "{} bundle(s) were refused; see the problems above",
                    report.failed
                );
            }
            Ok(())
        }
        Command::Backup { command } => backup::run(command, &SystemClock).await,
        Command::Tenant { command } => exit::run(command).await,
        Command::Stats(args) => stats::run(args).await,
        Command::Admin { data_dir, command } => {
            let ctx = Ctx::open(&data_dir)?;
            admin::run(&ctx, command).await
        }
    }
}

async fn serve(config: Config, demo_tls: Option<certs::DemoTls>) -> Result<()> {
    let ctx = Ctx::open(&config.data_dir)?;
    let tls = tillit_server::tls::server_config(
        &config.resolve(&config.tls.cert),
        &config.resolve(&config.tls.key),
    )?;
    if let Some(demo_tls) = &demo_tls {
        if ctx.store.is_empty().await? {
            println!("Seeding demo data in {} ...", config.data_dir.display());
            demo::seed(&ctx).await?;
        } else {
            println!("Reusing the data in {}", config.data_dir.display());
        }
        let _ = demo_tls;
    }
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let bound = listener.local_addr()?;
    let base_url = config.public_url(bound);
    let redirect = match config.server.redirect_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?,
        ),
        None => None,
    };

    if let Some(demo_tls) = &demo_tls {
        let creds =
            demo::credentials(&ctx, &base_url, &demo_tls.ca_cert, &demo_tls.ca_fingerprint).await?;
        let path = config.data_dir.join("demo-credentials.json");
        certs::write_private(&path, serde_json::to_string_pretty(&creds)?.as_bytes())?;
        demo::print_summary(&creds, demo_tls.created, &path);
    } else {
        tracing::info!(%base_url, "Tillit is serving");
    }

    let state = AppState::new(
        ctx.store.clone(),
        ctx.clock.clone(),
        ctx.hasher.clone(),
        ctx.keyring.clone(),
        config.clone(),
    );
    spawn_session_sweeper(&state);
    tillit_server::audit::checkpoints::spawn_cadence(&state);
    backup::spawn_schedule(&state);
    tillit_server::audit::review::spawn(&state);
    let app = tillit_server::router(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(redirect) = redirect {
        let mut rx = stop_rx.clone();
        tokio::spawn(tillit_server::serve::serve_redirect(
            redirect,
            base_url.clone(),
            async move {
                let _ = rx.changed().await;
            },
        ));
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut rx = stop_rx;
    tillit_server::serve::serve_https(listener, tls, app, state, async move {
        let _ = rx.changed().await;
    })
    .await;
    println!("Tillit stopped.");
    Ok(())
}

fn spawn_session_sweeper(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let now = state.clock.now();
            let s = &state.config.session;
            let idle = time::Duration::minutes(i64::from(s.staff_idle_minutes.max(s.idle_minutes)));
            let absolute = time::Duration::minutes(i64::from(s.absolute_minutes));
            if let Err(e) = state
                .store
                .delete_expired_sessions(now - idle, now - absolute)
                .await
            {
                tracing::warn!(error = %e, "session sweep failed");
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
