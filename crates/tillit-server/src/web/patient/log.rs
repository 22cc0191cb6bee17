//! "Hvem har sett journalen min": the patient's access log in plain words. The events come
//! from the same search as the FHIR `AuditEvent` API ([`crate::audit::fhir::search_events`]),
//! which limits a patient to the events about themself and logs the look.

use super::super::i18n::Tr;
use super::super::{Audience, Layout, PageError, Web, render_status};
use super::{me, parse_day};
use crate::authz::Subject;
use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;
use tillit_core::{PersonId, PersonKind, Role};
use tillit_store::{AuditEvent, AuditFilter, AuditOutcome};
use time::OffsetDateTime;

/// Events per page of the log.
const PAGE: u32 = 200;

/// One access, as the patient reads it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogRow {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(skip)]
    pub when: String,
    pub who: String,
    pub role: String,
    pub workplace: String,
    /// What was done, in words.
    pub what: String,
    /// Records the access covered (a search returns many).
    pub count: u32,
    /// Why it was allowed, in words.
    pub why: String,
    /// The reason stated for an emergency access.
    pub reason: Option<String>,
    pub refused: bool,
    pub emergency: bool,
    /// The patient's own access.
    #[serde(skip)]
    pub own: bool,
    // The codes behind the words, for the JSON download.
    pub action: String,
    pub categories: Vec<String>,
    pub basis: Option<String>,
    pub outcome: &'static str,
}

/// Names (and kinds) of people and names of units, looked up once per page.
pub struct Names {
    people: HashMap<String, Option<(Option<String>, PersonKind)>>,
    units: HashMap<String, String>,
}

impl Names {
    pub async fn load(web: &Web) -> Result<Self, PageError> {
        let units = web
            .state
            .store
            .list_org_units(&web.principal.tenant.id)
            .await?
            .into_iter()
            .map(|u| (u.id.to_string(), u.name))
            .collect();
        Ok(Self {
            people: HashMap::new(),
            units,
        })
    }

    async fn lookup(&mut self, web: &Web, id: &str) -> Option<(Option<String>, PersonKind)> {
        if let Some(n) = self.people.get(id) {
            return n.clone();
        }
        let found = match PersonId::parse(id) {
            Ok(pid) => web
                .state
                .store
                .person(&web.principal.tenant.id, &pid)
                .await
                .ok()
                .flatten()
                .map(|p| (p.display_name.filter(|n| !n.is_empty()), p.kind)),
            Err(_) => None,
        };
        self.people.insert(id.to_string(), found.clone());
        found
    }

    async fn person(&mut self, web: &Web, id: &str) -> Option<String> {
        self.lookup(web, id).await.and_then(|(n, _)| n)
    }

    /// The kind of person, for events that do not record it (security events).
    async fn kind(&mut self, web: &Web, id: &str) -> Option<&'static str> {
        self.lookup(web, id).await.map(|(_, k)| k.code())
    }
}

fn action_words(tr: Tr, action: &str) -> &'static str {
    match action {
        "read" => tr.t("patient.log.action.read"),
        "search" => tr.t("patient.log.action.search"),
        "history" => tr.t("patient.log.action.history"),
        "create" => tr.t("patient.log.action.create"),
        "update" => tr.t("patient.log.action.update"),
        "delete" => tr.t("patient.log.action.delete"),
        "emergency.opened" => tr.t("patient.log.action.emergency"),
        "audit.search" => tr.t("patient.log.action.audit_search"),
        "export" => tr.t("patient.log.action.export"),
        "record.withheld" => tr.t("patient.log.action.withheld"),
        "record.restricted" => tr.t("rights.log.action.restricted"),
        "patient.erased" => tr.t("rights.log.action.erased"),
        "erasure.refused" => tr.t("rights.log.action.erasure_refused"),
        _ => tr.t("patient.log.action.other"),
    }
}

fn basis_words(tr: Tr, basis: &str) -> &'static str {
    match basis {
        "care-relationship" => tr.t("patient.log.basis.care"),
        "emergency" => tr.t("patient.log.basis.emergency"),
        "own-record" => tr.t("patient.log.basis.own"),
        "relative" => tr.t("patient.log.basis.relative"),
        "grant" => tr.t("patient.log.basis.grant"),
        "integration" | "system" => tr.t("patient.log.basis.system"),
        "support" => tr.t("patient.log.basis.support"),
        _ => tr.t("patient.log.basis.other"),
    }
}

fn kind_words(tr: Tr, kind: Option<&str>) -> &'static str {
    match kind {
        Some("patient") => tr.t("patient.log.kind.patient"),
        Some("relative") => tr.t("patient.log.kind.relative"),
        Some("integration") => tr.t("patient.log.kind.integration"),
        Some("operator") => tr.t("patient.log.kind.operator"),
        Some("staff") => tr.t("patient.log.kind.staff"),
        _ => "",
    }
}

/// The events as rows, in the page's language.
pub async fn to_rows(web: &Web, names: &mut Names, events: &[AuditEvent]) -> Vec<LogRow> {
    let tr = web.tr;
    let me = me(web);
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let ev = &e.event;
        let own = ev.actor.person.as_deref() == Some(me.as_str());
        let kind = match (&ev.actor.kind, &ev.actor.person) {
            (Some(k), _) => Some(k.clone()),
            (None, Some(p)) => names.kind(web, p).await.map(str::to_string),
            (None, None) => None,
        };
        let mut who = match (&ev.actor.person, own) {
            (_, true) => tr.t("patient.log.you").to_string(),
            (Some(p), false) => match names.person(web, p).await {
                Some(n) => n,
                None => kind_words(tr, kind.as_deref()).to_string(),
            },
            (None, _) => tr.t("patient.log.admin").to_string(),
        };
        if who.is_empty() {
            who = tr.t("patient.log.unknown").to_string();
        }
        if let Some(boss) = &ev.actor.on_behalf_of {
            let boss = names
                .person(web, boss)
                .await
                .unwrap_or_else(|| tr.t("patient.log.kind.staff").to_string());
            who = tr.t2("patient.log.on_behalf_of", who, boss);
        }
        let role = if ev.actor.support {
            tr.t("patient.log.kind.operator").to_string()
        } else if !ev.actor.roles.is_empty() {
            ev.actor
                .roles
                .iter()
                .map(|r| match Role::parse(r) {
                    Ok(role) => tr.role(role).to_string(),
                    Err(_) => r.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        } else if own {
            String::new()
        } else {
            kind_words(tr, kind.as_deref()).to_string()
        };
        let workplace = ev
            .actor
            .org_units
            .iter()
            .filter_map(|u| names.units.get(u).cloned())
            .collect::<Vec<_>>()
            .join(", ");
        let action = action_words(tr, &ev.action);
        let what = if ev.categories.is_empty() {
            action.to_string()
        } else {
            format!("{action}: {}", super::categories_words(tr, &ev.categories))
        };
        let refused = ev.outcome == AuditOutcome::Denied;
        let emergency = ev.basis.as_deref() == Some("emergency") || ev.action == "emergency.opened";
        let why = if refused {
            tr.t("patient.log.refused_why").to_string()
        } else if emergency {
            tr.t("patient.log.basis.emergency").to_string()
        } else if ev.action == "audit.search" {
            tr.t("patient.log.basis.review").to_string()
        } else {
            ev.basis
                .as_deref()
                .map(|b| basis_words(tr, b).to_string())
                .unwrap_or_default()
        };
        // An access to a record whose processing the patient restricted is flagged.
        let why = if ev
            .policies
            .iter()
            .any(|p| p == crate::audit::RESTRICTED_FLAG)
            && !refused
        {
            format!("{why} ({})", tr.t("rights.log.restricted"))
        } else {
            why
        };
        out.push(LogRow {
            seq: e.seq,
            at: ev.at,
            when: tr.datetime(ev.at),
            who,
            role,
            workplace,
            what,
            count: ev.count,
            why,
            reason: ev.reason.clone().filter(|r| !r.is_empty()),
            refused,
            emergency,
            own,
            action: ev.action.clone(),
            categories: ev.categories.clone(),
            basis: ev.basis.clone(),
            outcome: ev.outcome.code(),
        });
    }
    out
}

/// The patient's events between `from` and `to`, newest first, before `before`.
pub async fn fetch(
    web: &Web,
    subject: &Subject,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<AuditEvent>, PageError> {
    let f = AuditFilter {
        patient: Some(me(web)),
        from,
        to,
        before,
        limit,
        ..AuditFilter::default()
    };
    Ok(crate::audit::fhir::search_events(&web.state, subject, &web.client, f, None).await?)
}

#[derive(Template)]
#[template(path = "web/patient/log.html")]
struct LogPage {
    l: Layout,
    rows: Vec<LogRow>,
    /// Emergency accesses opened in the rows shown, and rows under emergency access.
    openings: usize,
    emergencies: usize,
    from: String,
    to: String,
    own: bool,
    error: Option<&'static str>,
    error_field: &'static str,
    /// The link to older events, when there are more.
    older: Option<String>,
    /// Events of the patient's own that the page leaves out.
    own_hidden: usize,
}

/// `GET /me/log?from=YYYY-MM-DD&to=YYYY-MM-DD&own=1&before=seq`
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let tr = web.tr;
        let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        let (from_raw, to_raw) = (get("from"), get("to"));
        let own = get("own") == "1";
        let before = get("before").parse::<u64>().ok();
        let from = (!from_raw.is_empty()).then(|| parse_day(&from_raw));
        let to = (!to_raw.is_empty()).then(|| parse_day(&to_raw));
        let mut error = None;
        let mut error_field = "";
        if matches!(from, Some(None)) {
            (error, error_field) = (Some("patient.log.error.date"), "from");
        } else if matches!(to, Some(None)) {
            (error, error_field) = (Some("patient.log.error.date"), "to");
        }
        let from = from.flatten();
        let to = to.flatten().map(|t| t + time::Duration::days(1));
        if error.is_none() && from.zip(to).is_some_and(|(a, b)| a >= b) {
            (error, error_field) = (Some("patient.log.error.order"), "to");
        }
        let mut rows = Vec::new();
        let mut older = None;
        let mut own_hidden = 0;
        if error.is_none() {
            let subject = web.subject().await?;
            let events = fetch(&web, &subject, from, to, before, PAGE).await?;
            if events.len() as u32 >= PAGE
                && let Some(last) = events.last()
            {
                let mut pairs = vec![("before", last.seq.to_string())];
                if !from_raw.is_empty() {
                    pairs.push(("from", from_raw.clone()));
                }
                if !to_raw.is_empty() {
                    pairs.push(("to", to_raw.clone()));
                }
                if own {
                    pairs.push(("own", "1".into()));
                }
                older = Some(format!(
                    "/me/log?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs)
                        .finish()
                ));
            }
            let mut names = Names::load(&web).await?;
            rows = to_rows(&web, &mut names, &events).await;
            if !own {
                let before = rows.len();
                rows.retain(|r| !r.own);
                own_hidden = before - rows.len();
            }
        }
        let emergencies = rows.iter().filter(|r| r.emergency).count();
        let openings = rows
            .iter()
            .filter(|r| r.action == "emergency.opened")
            .count();
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        render_status(
            status,
            &LogPage {
                l: web.layout(tr.t("patient.log.title")),
                rows,
                openings,
                emergencies,
                from: from_raw,
                to: to_raw,
                own,
                error,
                error_field,
                older,
                own_hidden,
            },
        )
    }
    .await;
    web.finish(r)
}

#[cfg(test)]
mod tests {
    use super::super::super::i18n::Lang;
    use super::*;

    #[test]
    fn every_action_and_basis_has_words() {
        for lang in [Lang::Nb, Lang::En] {
            let tr = Tr::new(lang);
            for a in [
                "read",
                "search",
                "history",
                "create",
                "update",
                "delete",
                "emergency.opened",
                "audit.search",
                "record.withheld",
                "login.success",
            ] {
                assert_ne!(action_words(tr, a), "??", "{a}");
            }
            for b in [
                "care-relationship",
                "emergency",
                "own-record",
                "relative",
                "grant",
                "integration",
                "support",
                "role",
            ] {
                assert_ne!(basis_words(tr, b), "??", "{b}");
            }
        }
    }
}
