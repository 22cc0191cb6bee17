//! `tillit stats`: a tenant's anonymous statistics, small counts suppressed (the method is
//! in `docs/design/statistics.md`; the work is `tillit_server::stats`, shared with
//! `GET /admin/stats`).

use crate::Ctx;
use anyhow::{Result, anyhow};
use std::io::Write;
use std::path::PathBuf;
use tillit_server::stats;

#[derive(clap::Args)]
pub struct StatsArgs {
    /// The tenant (name or id).
    #[arg(long)]
    tenant: String,
    /// Counts below this are suppressed (5 to 1000).
    #[arg(long, default_value_t = stats::MIN_K)]
    k: u64,
    /// From this date or RFC 3339 time (inclusive).
    #[arg(long)]
    from: Option<String>,
    /// Up to this date or RFC 3339 time (exclusive).
    #[arg(long)]
    to: Option<String>,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    #[arg(long, value_name = "DIR", default_value = "tillit-data")]
    data_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

pub async fn run(a: StatsArgs) -> Result<()> {
    let options = stats::Options::new(
        a.k,
        stats::parse_instant("--from", a.from.as_deref()).map_err(|e| anyhow!(e))?,
        stats::parse_instant("--to", a.to.as_deref()).map_err(|e| anyhow!(e))?,
    )
    .map_err(|e| anyhow!(e.replace("k must", "--k must")))?;
    let ctx = Ctx::open(&a.data_dir)?;
    let tenant = crate::admin::tenant(&ctx, &a.tenant).await?;
    let s = stats::for_tenant(&ctx.store, &tenant, options).await?;
    let text = match a.format {
        Format::Json => serde_json::to_string_pretty(&s.to_json())? + "\n",
        Format::Csv => s.to_csv(),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| anyhow!("cannot write the statistics: {e}"))
}
