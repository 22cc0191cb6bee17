//! `tillit import PATH`: loads FHIR Bundles (a file or a folder of them, e.g. Synthea output)
//! into one tenant. Each bundle is committed atomically, as a transaction; entries of types
//! Tillit does not serve are left out, counted and reported; every bad entry is reported with
//! its file, entry index and element path, and its bundle is not committed.

use crate::Ctx;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tillit_server::authz::Actor;
use tillit_server::fhir::bundle;
use tillit_server::fhir::service::Fhir;
use tillit_server::{AppState, Config};

#[derive(Default)]
pub struct Report {
    pub files: usize,
    pub committed: usize,
    pub failed: usize,
    pub written: BTreeMap<String, usize>,
    pub unsupported: BTreeMap<String, usize>,
    pub problems: Vec<String>,
}

fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        bail!("{} is neither a file nor a folder", path.display());
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Turns any bundle (or a single resource) into a transaction of served types only.
fn as_transaction(doc: Value, report: &mut Report) -> Value {
    let entries: Vec<Value> = match doc.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => doc
            .get("entry")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => vec![json!({ "resource": doc })],
    };
    let mut kept = Vec::new();
    for mut e in entries {
        let rt = e
            .pointer("/resource/resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if e.get("resource").is_none() && e.get("request").is_some() {
            // DELETE or GET entries carry no resource.
            kept.push(e);
            continue;
        }
        if !tillit_fhir::resources::is_served(&rt) {
            *report
                .unsupported
                .entry(if rt.is_empty() {
                    "(no resourceType)".into()
                } else {
                    rt
                })
                .or_default() += 1;
            continue;
        }
        if e.get("request").is_none()
            && let Some(obj) = e.as_object_mut()
        {
            let id = obj
                .get("resource")
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let request = match id {
                Some(id) => json!({"method": "PUT", "url": format!("{rt}/{id}")}),
                None => json!({"method": "POST", "url": rt}),
            };
            obj.insert("request".into(), request);
        }
        kept.push(e);
    }
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": kept })
}

pub async fn run(
    ctx: &Ctx,
    path: &Path,
    tenant_name: Option<&str>,
    config: Config,
) -> Result<Report> {
    let tenants = ctx.store.list_tenants().await?;
    let tenant = match tenant_name {
        Some(name) => tenants
            .into_iter()
            .find(|t| t.name == name || t.id.as_str() == name)
            .with_context(|| format!("no tenant named '{name}'"))?,
        None => match tenants.as_slice() {
            [one] => one.clone(),
            [] => bail!("the data dir has no tenant; create one with `tillit admin tenant create`"),
            _ => bail!("the data dir has several tenants; choose one with --tenant"),
        },
    };
    let files = files_under(path)?;
    let mut state = AppState::new(
        ctx.store.clone(),
        ctx.clock.clone(),
        ctx.hasher.clone(),
        ctx.keyring.clone(),
        config,
    );
    // Bundles from generators are large; the API's request limits do not apply to files an
    // operator chose to load.
    state.json_limits = tillit_fhir::json::Limits {
        max_bytes: 512 * 1024 * 1024,
        max_depth: 64,
        max_array: 1_000_000,
    };
    let fhir = Fhir::new(
        &state,
        Actor::System {
            tenant: &tenant.id,
            purpose: "import",
        },
    );
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} bundles  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut report = Report::default();
    for file in &files {
        report.files += 1;
        bar.set_message(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let name = file.display().to_string();
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
        let doc = match tillit_fhir::json::parse(&bytes, &state.json_limits) {
            Ok(v) => v,
            Err(e) => {
                report.failed += 1;
                report.problems.push(format!("{name}: {e}"));
                bar.inc(1);
                continue;
            }
        };
        let tx = as_transaction(doc, &mut report);
        // Check every entry first so that all of a bundle's problems are reported at once.
        let mut bad = Vec::new();
        for (i, e) in tx
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(r) = e.get("resource")
                && let Err(issues) = tillit_fhir::validate::validate(r)
            {
                for issue in issues {
                    bad.push(format!(
                        "{name}: entry[{i}] {}: {}",
                        issue.expression.as_deref().unwrap_or(""),
                        issue.diagnostics
                    ));
                }
            }
        }
        if !bad.is_empty() {
            report.failed += 1;
            report.problems.extend(bad);
            bar.inc(1);
            continue;
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for e in tx
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(rt) = e.pointer("/resource/resourceType").and_then(Value::as_str) {
                *counts.entry(rt.to_string()).or_default() += 1;
            }
        }
        match bundle::process(&fhir, tx, "urn:tillit:import").await {
            Ok(_) => {
                report.committed += 1;
                for (k, v) in counts {
                    *report.written.entry(k).or_default() += v;
                }
            }
            Err(e) => {
                report.failed += 1;
                for issue in &e.issues {
                    report.problems.push(format!(
                        "{name}: {} {}",
                        issue.expression.as_deref().unwrap_or(""),
                        issue.diagnostics
                    ));
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // The import is a write into the tenant's records: it is in the tenant's log.
    let written: usize = report.written.values().sum();
    crate::admin::cli_event(
        ctx,
        &tenant.id,
        tillit_store::SecurityEventKind::RecordsImported,
        report.failed == 0,
        format!(
            "{written} resources imported from {} file(s) ({} bundles committed, {} refused)",
            report.files, report.committed, report.failed
        ),
        "tillit import (CLI)",
    )
    .await?;
    Ok(report)
}

pub fn print(report: &Report) {
    println!(
        "{} file(s): {} bundle(s) committed, {} refused",
        report.files, report.committed, report.failed
    );
    let written: usize = report.written.values().sum();
    println!("resources written: {written}");
    for (k, v) in &report.written {
        println!("  {k:<24} {v}");
    }
    if !report.unsupported.is_empty() {
        let n: usize = report.unsupported.values().sum();
        println!("left out, types Tillit does not serve: {n}");
        for (k, v) in &report.unsupported {
            println!("  {k:<24} {v}");
        }
    }
    for p in &report.problems {
        eprintln!("problem: {p}");
    }
}
