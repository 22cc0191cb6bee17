//! The alert queue, an alert's detail with its decision, and the deviations with the 72-hour
//! breach clock. The queue and the decision are [`crate::audit::alerts`]' own functions, as
//! in the JSON API.

use super::{
    EventRow, Names, PersonView, rule_explanation, rule_label, rule_set, severity, status,
};
use crate::audit::alerts as shared;
use crate::error::AppError;
use crate::web::i18n::Tr;
use crate::web::{Audience, Layout, PageError, Web, form, render, render_status};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_audit::review::RuleSet;
use tillit_store::{Alert, AlertStatus};
use time::{Duration, OffsetDateTime};

/// GDPR art. 33: a personal-data breach is notified within 72 hours of becoming aware of it.
const BREACH_HOURS: i64 = 72;

/// One alert as the lists show it.
struct AlertRow {
    id: String,
    rule: String,
    severity: String,
    severity_class: &'static str,
    actor: Option<PersonView>,
    patient: Option<PersonView>,
    raised: String,
    raised_ago: String,
    events: usize,
    status: &'static str,
    status_class: &'static str,
}

impl AlertRow {
    async fn of(web: &Web, rules: &RuleSet, names: &mut Names, a: &Alert) -> Self {
        let (tr, state, tenant) = (web.tr, &web.state, &web.principal.tenant.id);
        let (severity, severity_class) = severity(tr, &a.alert.severity);
        let (status, status_class) = status(tr, a.status);
        AlertRow {
            id: a.id.clone(),
            rule: rule_label(tr, rules, &a.alert.rule),
            severity,
            severity_class,
            actor: names.opt(state, tenant, a.alert.actor.as_deref()).await,
            patient: names.opt(state, tenant, a.alert.patient.as_deref()).await,
            raised: tr.datetime(a.alert.raised_at),
            raised_ago: super::ago(tr, a.alert.raised_at, web.now()),
            events: a.alert.seqs.len(),
            status,
            status_class,
        }
    }
}

/// `GET /security`: the security officer's home is the queue.
pub async fn home() -> Response {
    Redirect::to("/security/alerts").into_response()
}

// --- the queue ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "web/security/alerts.html")]
struct QueuePage {
    l: Layout,
    filter: &'static str,
    filters: Vec<(&'static str, &'static str)>,
    rows: Vec<AlertRow>,
    /// The decision just made, to confirm.
    decided: Option<&'static str>,
}

/// `GET /security/alerts?status=open|justified|deviation|all`: newest first.
pub async fn queue(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Security)?;
        let tr = web.tr;
        let (filter, status) = match q.get("status").map(String::as_str) {
            None | Some("open") => ("open", Some(AlertStatus::Open)),
            Some("justified") => ("justified", Some(AlertStatus::Justified)),
            Some("deviation") => ("deviation", Some(AlertStatus::Deviation)),
            Some("all") => ("all", None),
            Some(_) => {
                return Err(PageError::bad_request(
                    "status is open, justified, deviation or all",
                ));
            }
        };
        let alerts = shared::queue(&web.state, &web.principal, status, 500).await?;
        let rules = rule_set(&web.state, &web.principal.tenant.id).await?;
        let mut names = Names::default();
        let mut rows = Vec::with_capacity(alerts.len());
        for a in &alerts {
            rows.push(AlertRow::of(&web, &rules, &mut names, a).await);
        }
        let decided = match q.get("decided").map(String::as_str) {
            Some("justified") => Some(tr.t("security.decided.justified")),
            Some("deviation") => Some(tr.t("security.decided.deviation")),
            _ => None,
        };
        render(&QueuePage {
            l: web.layout(tr.t("security.alerts.title")),
            filter,
            filters: vec![
                ("open", tr.t("security.filter.open")),
                ("justified", tr.t("security.filter.justified")),
                ("deviation", tr.t("security.filter.deviation")),
                ("all", tr.t("security.filter.all")),
            ],
            rows,
            decided,
        })
    }
    .await;
    web.finish(r)
}

// --- one alert ---------------------------------------------------------------------------

/// How an alert was closed.
struct Decided {
    by: Option<PersonView>,
    at: String,
    note: String,
    breach: bool,
    deadline: Option<String>,
}

/// The decision form as typed, with what was wrong with it.
#[derive(Default)]
struct DecisionForm {
    decision: String,
    note: String,
    breach: bool,
    error_decision: Option<&'static str>,
    error_note: Option<&'static str>,
    error_breach: Option<&'static str>,
    /// A refusal that concerns the whole form (closed meanwhile).
    error_form: Option<&'static str>,
}

impl DecisionForm {
    fn has_errors(&self) -> bool {
        self.error_decision.is_some()
            || self.error_note.is_some()
            || self.error_breach.is_some()
            || self.error_form.is_some()
    }
}

#[derive(Template)]
#[template(path = "web/security/alert.html")]
struct DetailPage {
    l: Layout,
    a: AlertRow,
    explanation: Option<String>,
    decided: Option<Decided>,
    events: Vec<EventRow>,
    /// Events behind the alert that could not be shown (erased payloads, or beyond 200).
    hidden_events: usize,
    f: DecisionForm,
    min_note: usize,
}

async fn detail_page(web: &Web, id: &str, f: DecisionForm) -> Result<Response, PageError> {
    web.require(Audience::Security)?;
    let tr = web.tr;
    let (state, tenant) = (&web.state, &web.principal.tenant.id);
    let (a, found) = shared::alert_with_events(state, &web.principal, &web.client, id).await?;
    let rules = rule_set(state, tenant).await?;
    let mut names = Names::default();
    let mut events = Vec::with_capacity(found.len());
    for e in &found {
        events.push(EventRow::of(state, tenant, tr, &mut names, e).await);
    }
    let decided = match a.status {
        AlertStatus::Open => None,
        _ => Some(Decided {
            by: names.opt(state, tenant, a.decided_by.as_deref()).await,
            at: a.decided_at.map(|t| tr.datetime(t)).unwrap_or_default(),
            note: a.decision_note.clone().unwrap_or_default(),
            breach: a.breach,
            deadline: a.breach_deadline.map(|d| tr.datetime(d)),
        }),
    };
    let status = if f.has_errors() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut l = web.layout(tr.t("security.alert.title"));
    // A form shown again after a POST: the language switch returns to the alert.
    l.path = format!("/security/alerts/{}", a.id);
    let page = DetailPage {
        l,
        a: AlertRow::of(web, &rules, &mut names, &a).await,
        explanation: rule_explanation(tr, &rules, &a.alert.rule),
        decided,
        hidden_events: a.alert.seqs.len().saturating_sub(events.len()),
        events,
        f,
        min_note: shared::MIN_NOTE_CHARS,
    };
    render_status(status, &page)
}

/// `GET /security/alerts/{id}`: the alert, the events behind it, and the decision form.
pub async fn detail(web: Web, Path(id): Path<String>) -> Response {
    let r = detail_page(&web, &id, DecisionForm::default()).await;
    web.finish(r)
}

/// `POST /security/alerts/{id}/decision`: `decision` (justified or deviation), `note`,
/// `breach` (a checkbox, only for a deviation). Back to the queue with a confirmation.
pub async fn decide(web: Web, Path(id): Path<String>, body: Bytes) -> Response {
    let r = async {
        let fields = form(&body);
        web.check_csrf(&fields)?;
        web.require(Audience::Security)?;
        let mut f = DecisionForm {
            decision: fields.get("decision").cloned().unwrap_or_default(),
            note: fields.get("note").cloned().unwrap_or_default(),
            breach: fields.get("breach").is_some_and(|v| !v.is_empty()),
            ..DecisionForm::default()
        };
        let status = match shared::check_decision(&f.decision, &f.note, f.breach) {
            Ok(s) => s,
            Err(problem) => {
                match problem {
                    shared::DecisionProblem::Decision => {
                        f.error_decision = Some("security.decision.error.decision")
                    }
                    shared::DecisionProblem::Note => {
                        f.error_note = Some("security.decision.error.note")
                    }
                    shared::DecisionProblem::Breach => {
                        f.error_breach = Some("security.decision.error.breach")
                    }
                }
                return detail_page(&web, &id, f).await;
            }
        };
        match shared::close(
            &web.state,
            &web.principal,
            &web.client,
            &id,
            status,
            &f.note,
            f.breach,
        )
        .await
        {
            Ok(a) => Ok(
                Redirect::to(&format!("/security/alerts?decided={}", a.status.code()))
                    .into_response(),
            ),
            Err(AppError::BadRequest(_)) => {
                // Closed by someone else meanwhile: the page now shows how.
                f.error_form = Some("security.decision.error.closed");
                detail_page(&web, &id, f).await
            }
            Err(e) => Err(e.into()),
        }
    }
    .await;
    web.finish(r)
}

// --- deviations --------------------------------------------------------------------------

/// The 72-hour clock of a personal-data breach.
struct BreachClock {
    /// "31 t igjen" or "Fristen gikk ut for 5 t siden".
    text: String,
    class: &'static str,
    deadline: String,
    /// How long since the breach was recognised.
    since: String,
}

fn breach_clock(tr: Tr, deadline: OffsetDateTime, now: OffsetDateTime) -> BreachClock {
    let left = deadline - now;
    let hours_or_minutes = |d: Duration, hours_key: &str, minutes_key: &str| {
        let d = d.abs();
        if d >= Duration::hours(1) {
            tr.t1(hours_key, d.whole_hours())
        } else {
            tr.t1(minutes_key, d.whole_minutes())
        }
    };
    let (text, class) = if left > Duration::ZERO {
        (
            hours_or_minutes(
                left,
                "security.clock.left_hours",
                "security.clock.left_minutes",
            ),
            if left > Duration::hours(24) {
                "warn"
            } else {
                "danger"
            },
        )
    } else {
        (
            hours_or_minutes(
                left,
                "security.clock.overdue_hours",
                "security.clock.overdue_minutes",
            ),
            "danger",
        )
    };
    let recognised = deadline - Duration::hours(BREACH_HOURS);
    BreachClock {
        text,
        class,
        deadline: tr.datetime(deadline),
        since: super::ago(tr, recognised, now),
    }
}

struct DeviationRow {
    a: AlertRow,
    decided: String,
    by: Option<PersonView>,
    note: String,
    clock: Option<BreachClock>,
}

#[derive(Template)]
#[template(path = "web/security/deviations.html")]
struct DeviationsPage {
    l: Layout,
    rows: Vec<DeviationRow>,
    /// Breaches whose deadline has not passed.
    running: usize,
    overdue: usize,
}

/// `GET /security/deviations`: alerts closed as deviations; breaches first, by deadline.
pub async fn deviations(web: Web) -> Response {
    let r = async {
        web.require(Audience::Security)?;
        let tr = web.tr;
        let now = web.now();
        let (state, tenant) = (&web.state, &web.principal.tenant.id);
        let mut alerts =
            shared::queue(state, &web.principal, Some(AlertStatus::Deviation), 1000).await?;
        // Breaches with the nearest deadline first, then the other deviations, newest first.
        alerts.sort_by_key(|a| {
            (
                a.breach_deadline.is_none(),
                a.breach_deadline,
                std::cmp::Reverse(a.decided_at),
            )
        });
        let rules = rule_set(state, tenant).await?;
        let mut names = Names::default();
        let mut rows = Vec::with_capacity(alerts.len());
        for a in &alerts {
            rows.push(DeviationRow {
                a: AlertRow::of(&web, &rules, &mut names, a).await,
                decided: a.decided_at.map(|t| tr.datetime(t)).unwrap_or_default(),
                by: names.opt(state, tenant, a.decided_by.as_deref()).await,
                note: a.decision_note.clone().unwrap_or_default(),
                clock: a
                    .breach_deadline
                    .filter(|_| a.breach)
                    .map(|d| breach_clock(tr, d, now)),
            });
        }
        let running = alerts
            .iter()
            .filter(|a| a.breach_deadline.is_some_and(|d| d > now))
            .count();
        let overdue = alerts
            .iter()
            .filter(|a| a.breach_deadline.is_some_and(|d| d <= now))
            .count();
        render(&DeviationsPage {
            l: web.layout(tr.t("security.deviations.title")),
            rows,
            running,
            overdue,
        })
    }
    .await;
    web.finish(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n::Lang;
    use time::macros::datetime;

    #[test]
    fn the_breach_clock_counts_down_then_up() {
        let tr = Tr::new(Lang::Nb);
        let deadline = datetime!(2026-03-04 12:00 UTC);
        let c = breach_clock(tr, deadline, deadline - Duration::hours(31));
        assert_eq!(c.text, "31 t igjen");
        assert_eq!(c.class, "warn");
        let c = breach_clock(tr, deadline, deadline - Duration::minutes(40));
        assert_eq!(c.text, "40 min igjen");
        assert_eq!(c.class, "danger");
        let c = breach_clock(tr, deadline, deadline + Duration::hours(5));
        assert_eq!(c.text, "Fristen gikk ut for 5 t siden");
        assert_eq!(c.class, "danger");
        let en = breach_clock(Tr::new(Lang::En), deadline, deadline - Duration::hours(10));
        assert_eq!(en.text, "10 h left");
    }
}
