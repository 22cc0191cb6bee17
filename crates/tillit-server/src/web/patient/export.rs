//! "Last ned mine data": everything held about the patient as a FHIR Bundle, and their access
//! log as CSV or JSON. The record is read through the FHIR search as the patient (policy-checked
//! and audited; records withheld from the patient are left out, as everywhere), the log through
//! the same search as the `AuditEvent` API.

use super::super::{Audience, Layout, PageError, Web, render};
use super::log::{LogRow, Names, fetch, to_rows};
use super::me;
use crate::authz::Actor;
use crate::fhir::service::Fhir;
use askama::Template;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Log events per request to the store while exporting, and the most exported at once.
const LOG_PAGE: u32 = 500;
const LOG_MAX: usize = 20_000;

#[derive(Template)]
#[template(path = "web/patient/export.html")]
struct ExportPage {
    l: Layout,
}

/// `GET /me/export`
pub async fn page(web: Web) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        render(&ExportPage {
            l: web.layout(web.tr.t("patient.export.title")),
        })
    }
    .await;
    web.finish(r)
}

/// A download: the body with its type and file name.
fn attachment(body: Vec<u8>, content_type: &'static str, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn today(web: &Web) -> String {
    crate::audit::review::oslo(web.now()).date().to_string()
}

/// Every resource in the patient's compartment that they may see, as a `collection` Bundle.
async fn bundle(web: &Web, base: &str) -> Result<Value, PageError> {
    let subject = web.subject().await?;
    let fhir = Fhir::new(&web.state, Actor::User(&subject));
    let me = me(web);
    let mut entries = Vec::new();
    let (_, patient) = fhir.read("Patient", &me).await?;
    entries.push(json!({"fullUrl": format!("{base}/Patient/{me}"), "resource": patient}));
    for rt in tillit_fhir::resources::SERVED {
        if *rt == "Patient" || tillit_fhir::search::param(rt, "patient").is_none() {
            continue;
        }
        let mut offset = 0usize;
        loop {
            let params = vec![
                ("patient".to_string(), format!("Patient/{me}")),
                ("_count".to_string(), "1000".to_string()),
                ("_offset".to_string(), offset.to_string()),
            ];
            let page = crate::fhir::search(&fhir, rt, &params, false, base).await?;
            let total = page
                .get("total")
                .and_then(Value::as_u64)
                .and_then(|t| usize::try_from(t).ok())
                .unwrap_or(0);
            let mut got = 0usize;
            for e in page
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let mode = e
                    .get("search")
                    .and_then(|s| s.get("mode"))
                    .and_then(Value::as_str);
                if mode == Some("match") {
                    got += 1;
                    entries
                        .push(json!({"fullUrl": e.get("fullUrl"), "resource": e.get("resource")}));
                }
            }
            offset += got;
            if got == 0 || offset >= total {
                break;
            }
        }
    }
    Ok(json!({
        "resourceType": "Bundle",
        "id": crate::fhir::service::new_id(),
        "type": "collection",
        "timestamp": crate::fhir::service::format_instant(web.now()),
        "total": entries.len(),
        "entry": entries,
    }))
}

/// `GET /me/export/record.json`: the record as a FHIR Bundle.
pub async fn record(web: Web, headers: HeaderMap) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let base = crate::fhir::base_url(&headers, None);
        let b = bundle(&web, &base).await?;
        let body = serde_json::to_vec_pretty(&b)
            .map_err(|e| PageError::from(crate::error::AppError::Internal(e.to_string())))?;
        Ok(attachment(
            body,
            "application/fhir+json",
            &format!("tillit-record-{}.json", today(&web)),
        ))
    }
    .await;
    web.finish(r)
}

/// The whole access log of the patient, newest first, in the page's language.
async fn all_rows(web: &Web) -> Result<Vec<LogRow>, PageError> {
    let subject = web.subject().await?;
    let mut events = Vec::new();
    let mut before = None;
    loop {
        let page = fetch(web, &subject, None, None, before, LOG_PAGE).await?;
        let full = page.len() as u32 >= LOG_PAGE;
        before = page.last().map(|e| e.seq);
        events.extend(page);
        if !full || events.len() >= LOG_MAX {
            break;
        }
    }
    let mut names = Names::load(web).await?;
    Ok(to_rows(web, &mut names, &events).await)
}

/// A CSV cell: quoted, and never read as a formula by a spreadsheet.
fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn csv(web: &Web, rows: &[LogRow]) -> String {
    let tr = web.tr;
    let head = [
        tr.t("patient.log.col.when"),
        tr.t("patient.log.col.who"),
        tr.t("patient.log.col.role"),
        tr.t("patient.log.col.workplace"),
        tr.t("patient.log.col.what"),
        tr.t("patient.log.col.count"),
        tr.t("patient.log.col.why"),
        tr.t("patient.log.col.reason"),
        tr.t("patient.log.col.outcome"),
    ];
    let mut out = String::from("\u{feff}");
    out.push_str(&head.iter().map(|h| cell(h)).collect::<Vec<_>>().join(";"));
    out.push_str("\r\n");
    for r in rows {
        let outcome = if r.refused {
            tr.t("patient.log.refused")
        } else {
            tr.t("patient.log.allowed")
        };
        let line = [
            cell(&r.when),
            cell(&r.who),
            cell(&r.role),
            cell(&r.workplace),
            cell(&r.what),
            r.count.to_string(),
            cell(&r.why),
            cell(r.reason.as_deref().unwrap_or_default()),
            cell(outcome),
        ];
        out.push_str(&line.join(";"));
        out.push_str("\r\n");
    }
    out
}

/// `GET /me/export/log.csv`: the access log for a spreadsheet (semicolons, as Norwegian
/// spreadsheets expect; UTF-8 with a byte-order mark).
pub async fn log_csv(web: Web) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let rows = all_rows(&web).await?;
        Ok(attachment(
            csv(&web, &rows).into_bytes(),
            "text/csv; charset=utf-8",
            &format!("tillit-access-log-{}.csv", today(&web)),
        ))
    }
    .await;
    web.finish(r)
}

/// `GET /me/export/log.json`: the access log as JSON (words and the codes behind them).
pub async fn log_json(web: Web) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let rows = all_rows(&web).await?;
        let body = serde_json::to_vec_pretty(&json!({"events": rows}))
            .map_err(|e| PageError::from(crate::error::AppError::Internal(e.to_string())))?;
        Ok(attachment(
            body,
            "application/json",
            &format!("tillit-access-log-{}.json", today(&web)),
        ))
    }
    .await;
    web.finish(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("a \"b\""), "\"a \"\"b\"\"\"");
        assert_eq!(cell("=HYPERLINK(x)"), "\"'=HYPERLINK(x)\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("Kari"), "\"Kari\"");
    }
}
