//! The audit search: the tenant's log filtered by period, person, patient, action, outcome
//! and category, newest first and paged. It searches through
//! [`crate::audit::fhir::search_events`], the AuditEvent API's own search, so the same scope
//! applies and the search is itself logged (`audit.search`, about the patient searched for).

use super::{EventRow, Names, text_or};
use crate::web::{Audience, Layout, PageError, Web, render_status};
use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;
use tillit_core::{PersonId, PersonKind, national_id::NationalId};
use tillit_fhir::category::Category;
use tillit_store::{AuditFilter, AuditOutcome};
use time::{Date, Duration, OffsetDateTime};

/// Rows on a page.
const PAGE: usize = 50;
/// Events read per page when filtering by category (the log is not indexed by it).
const CATEGORY_SCAN: u32 = 200;

/// The action codes the filter offers: data actions, then security events.
const ACTIONS: &[&str] = &[
    "read",
    "search",
    "history",
    "create",
    "update",
    "delete",
    "export",
    "emergency.opened",
    "login.success",
    "login.failure",
    "login.lockout",
    "logout",
    "session.expired",
    "password.changed",
    "totp.enrolled",
    "token.created",
    "token.revoked",
    "token.use",
    "policy.changed",
    "access.changed",
    "record.withheld",
    "support.access",
    "audit.search",
    "audit.export",
    "alert.reviewed",
    "records.imported",
    "backup.created",
    "backup.restored",
];

/// The search form as typed, with what was wrong with it.
#[derive(Default)]
struct SearchForm {
    from: String,
    to: String,
    actor: String,
    patient: String,
    action: String,
    outcome: String,
    category: String,
    error_from: Option<&'static str>,
    error_to: Option<&'static str>,
    error_patient: Option<&'static str>,
}

impl SearchForm {
    fn read(q: &HashMap<String, String>) -> Self {
        let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        SearchForm {
            from: get("from"),
            to: get("to"),
            actor: get("actor"),
            patient: get("patient"),
            action: get("action"),
            outcome: get("outcome"),
            category: get("category"),
            ..SearchForm::default()
        }
    }

    fn has_errors(&self) -> bool {
        self.error_from.is_some() || self.error_to.is_some() || self.error_patient.is_some()
    }

    /// The filters as a query string, on the page of events before `before` (the newest
    /// page without it).
    fn query(&self, before: Option<u64>) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("actor", &self.actor),
            ("patient", &self.patient),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("category", &self.category),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if let Some(b) = before {
            s.append_pair("before", &b.to_string());
        }
        s.finish()
    }
}

/// Midnight at the start of `d` in Norway (the page's dates are local).
fn local_midnight(d: Date) -> OffsetDateTime {
    let offset = crate::audit::review::oslo(d.midnight().assume_utc()).offset();
    d.midnight().assume_offset(offset)
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(
        s,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// A choice in a select.
struct Choice {
    value: String,
    label: String,
}

#[derive(Template)]
#[template(path = "web/security/audit.html")]
struct SearchPage {
    l: Layout,
    f: SearchForm,
    actors: Vec<Choice>,
    actions: Vec<Choice>,
    outcomes: Vec<Choice>,
    categories: Vec<Choice>,
    /// None when the form had errors and nothing was searched.
    events: Option<Vec<EventRow>>,
    /// The next (older) page's query string.
    older: Option<String>,
    /// Whether this is a later page (so "back to the newest" is offered).
    paged: bool,
}

/// The patient asked for: a Tillit id (`Patient/` optional) or a national id, which is
/// looked up by its blind index among the tenant's patients.
async fn patient_id(web: &Web, raw: &str) -> Result<Option<String>, &'static str> {
    let raw = raw.strip_prefix("Patient/").unwrap_or(raw).trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.chars().all(|c| c.is_ascii_digit() || c == ' ') {
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        let nid = NationalId::parse(&digits).map_err(|_| "security.audit.error.national_id")?;
        let tenant = &web.principal.tenant.id;
        let index = web
            .state
            .keyring
            .blind_index(tenant.as_str(), "national-id", &nid.expose())
            .map_err(|_| "security.audit.error.patient_unknown")?;
        let patients = web
            .state
            .store
            .list_persons(tenant, Some(PersonKind::Patient))
            .await
            .map_err(|_| "security.audit.error.patient_unknown")?;
        return patients
            .into_iter()
            .find(|p| p.national_id_index.as_deref() == Some(&index[..]))
            .map(|p| Some(p.id.to_string()))
            .ok_or("security.audit.error.patient_unknown");
    }
    let id = PersonId::parse(raw).map_err(|_| "security.audit.error.patient")?;
    match web.state.store.person(&web.principal.tenant.id, &id).await {
        Ok(Some(p)) if p.kind == PersonKind::Patient => Ok(Some(id.to_string())),
        _ => Err("security.audit.error.patient_unknown_id"),
    }
}

/// `GET /security/audit?from=&to=&actor=&patient=&action=&outcome=&category=&before=`
pub async fn search(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Security)?;
        let tr = web.tr;
        let (state, tenant) = (&web.state, &web.principal.tenant.id);
        let mut f = SearchForm::read(&q);
        let mut filter = AuditFilter {
            limit: PAGE as u32,
            ..AuditFilter::default()
        };
        if !f.from.is_empty() {
            match parse_date(&f.from) {
                Some(d) => filter.from = Some(local_midnight(d)),
                None => f.error_from = Some("security.audit.error.date"),
            }
        }
        if !f.to.is_empty() {
            match parse_date(&f.to) {
                Some(d) => filter.to = Some(local_midnight(d) + Duration::days(1)),
                None => f.error_to = Some("security.audit.error.date"),
            }
        }
        if let (Some(a), Some(b)) = (filter.from, filter.to)
            && a >= b
        {
            f.error_to = Some("security.audit.error.order");
        }
        match patient_id(&web, &f.patient).await {
            Ok(p) => filter.patient = p,
            Err(k) => f.error_patient = Some(k),
        }
        if !f.actor.is_empty() {
            filter.actor = Some(f.actor.clone());
        }
        if !f.action.is_empty() {
            filter.action = Some(f.action.clone());
        }
        if !f.outcome.is_empty() {
            filter.outcome =
                Some(AuditOutcome::parse(&f.outcome).ok_or_else(|| {
                    PageError::bad_request("outcome is success, denied or failure")
                })?);
        }
        let category = match f.category.as_str() {
            "" => None,
            c => Some(
                Category::parse(c)
                    .ok_or_else(|| PageError::bad_request("unknown category"))?
                    .code(),
            ),
        };
        if let Some(b) = q.get("before").filter(|b| !b.is_empty()) {
            filter.before = Some(
                b.parse()
                    .map_err(|_| PageError::bad_request("before is a sequence number"))?,
            );
        }
        let paged = filter.before.is_some();

        let (events, older) = if f.has_errors() {
            (None, None)
        } else {
            if category.is_some() {
                filter.limit = CATEGORY_SCAN;
            }
            let scanned = filter.limit as usize;
            let subject = web.subject().await?;
            let found =
                crate::audit::fhir::search_events(state, &subject, &web.client, filter, None)
                    .await?;
            let more = found.len() >= scanned;
            let last_scanned = found.last().map(|e| e.seq);
            let mut kept: Vec<_> = found
                .into_iter()
                .filter(|e| category.is_none_or(|c| e.event.categories.iter().any(|x| x == c)))
                .collect();
            let older = if kept.len() > PAGE {
                kept.truncate(PAGE);
                kept.last().map(|e| e.seq)
            } else if more {
                last_scanned
            } else {
                None
            };
            let mut names = Names::default();
            let mut rows = Vec::with_capacity(kept.len());
            for e in &kept {
                rows.push(EventRow::of(state, tenant, tr, &mut names, e).await);
            }
            (Some(rows), older.map(|seq| f.query(Some(seq))))
        };

        let mut actors: Vec<Choice> = state
            .store
            .list_persons(tenant, Some(PersonKind::Staff))
            .await?
            .into_iter()
            .map(|p| Choice {
                value: p.id.to_string(),
                label: p.display_name.unwrap_or_else(|| p.id.to_string()),
            })
            .collect();
        actors.sort_by(|a, b| a.label.cmp(&b.label));
        let actions = ACTIONS
            .iter()
            .map(|a| Choice {
                value: (*a).to_string(),
                label: text_or(tr, &format!("security.action.{a}"), a),
            })
            .collect();
        let outcomes = [
            AuditOutcome::Success,
            AuditOutcome::Denied,
            AuditOutcome::Failure,
        ]
        .into_iter()
        .map(|o| Choice {
            value: o.code().to_string(),
            label: super::outcome(tr, o).0.to_string(),
        })
        .collect();
        let categories = Category::ALL
            .into_iter()
            .map(|c| Choice {
                value: c.code().to_string(),
                label: tr.category(c).to_string(),
            })
            .collect();
        let status = if f.has_errors() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        render_status(
            status,
            &SearchPage {
                l: web.layout(tr.t("security.audit.title")),
                f,
                actors,
                actions,
                outcomes,
                categories,
                events,
                older,
                paged,
            },
        )
    }
    .await;
    web.finish(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn dates_are_norwegian_days() {
        assert_eq!(
            local_midnight(date!(2026 - 01 - 15)),
            datetime!(2026-01-14 23:00 UTC)
        );
        assert_eq!(
            local_midnight(date!(2026 - 07 - 15)),
            datetime!(2026-07-14 22:00 UTC)
        );
        assert!(parse_date("2026-13-01").is_none());
    }

    #[test]
    fn the_next_page_keeps_the_filters() {
        let f = SearchForm {
            actor: "a b".into(),
            outcome: "denied".into(),
            ..SearchForm::default()
        };
        assert_eq!(f.query(Some(42)), "actor=a+b&outcome=denied&before=42");
        assert_eq!(f.query(None), "actor=a+b&outcome=denied");
    }
}
