//! The tenant admin's pages (`/manage/...`; `/admin/...` is the JSON API): people and their
//! accounts, role assignments, care relationships and teams, the tenant's policies,
//! support access for the platform operator, and key, audit-log and backup status.
//!
//! Every page is for the tenant admin only ([`Audience::Admin`]) and reads and changes only
//! the caller's tenant. Patients appear by their pseudonymous id: their names are sealed
//! under their own keys and only an audited, policy-checked FHIR read opens them, which the
//! policies do not give an admin. Every change is recorded as a security event in the
//! tenant's audit log (`AccessChanged`, `PolicyChanged`) through the same functions as the
//! JSON API where one exists ([`crate::admin`]); access caches follow by themselves, as every
//! change bumps the tenant's access generation in its own transaction.

mod care;
mod people;
mod policies;
mod roles;
mod status;
mod support;

use super::i18n::Tr;
use super::{Audience, PageError, Web};
use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};
use std::collections::HashMap;
use tillit_core::{OrgUnitId, Period, PersonId};
use tillit_store::{OrgUnit, Person};
use time::{Date, Duration, OffsetDateTime};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/manage",
            get(|| async { axum::response::Redirect::to("/manage/people") }),
        )
        .route("/manage/people", get(people::page).post(people::create))
        .route("/manage/accounts/{id}/unlock", post(people::unlock))
        .route("/manage/roles", get(roles::page).post(roles::assign))
        .route("/manage/roles/{id}/end", post(roles::end))
        .route("/manage/care", get(care::page).post(care::add))
        .route("/manage/care/{id}/end", post(care::end))
        .route("/manage/policies", get(policies::page).post(policies::save))
        .route("/manage/support", get(support::page).post(support::grant))
        .route("/manage/support/{id}/revoke", post(support::revoke))
        .route("/manage/status", get(status::page))
}

/// The admin's check, first in every handler.
fn admin(web: &Web) -> Result<(), PageError> {
    web.require(Audience::Admin)
}

/// Where a period stands now, for a badge that says it in words (not only by colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodState {
    Active,
    Ended,
    Future,
}

impl PeriodState {
    pub fn of(p: &Period, now: OffsetDateTime) -> Self {
        if p.contains(now) {
            Self::Active
        } else if p.start() > now {
            Self::Future
        } else {
            Self::Ended
        }
    }

    pub fn label(self, tr: Tr) -> &'static str {
        match self {
            Self::Active => tr.t("admin.state.active"),
            Self::Ended => tr.t("admin.state.ended"),
            Self::Future => tr.t("admin.state.future"),
        }
    }

    /// The badge's class: `ok`, `warn` or none.
    pub fn class(self) -> &'static str {
        match self {
            Self::Active => "ok",
            Self::Future => "warn",
            Self::Ended => "",
        }
    }
}

/// A period as the pages show it: the first day, and the last day it covers (the stored end
/// is exclusive), in Norwegian time.
pub struct ShownPeriod {
    pub from: String,
    /// Empty when open-ended.
    pub to: String,
    pub state: PeriodState,
    pub state_label: &'static str,
}

impl ShownPeriod {
    pub fn new(p: &Period, now: OffsetDateTime, tr: Tr) -> Self {
        let state = PeriodState::of(p, now);
        Self {
            from: tr.date(p.start()),
            to: p
                .end()
                .map(|e| tr.date(e - Duration::seconds(1)))
                .unwrap_or_default(),
            state,
            state_label: state.label(tr),
        }
    }

    pub fn ended(&self) -> bool {
        self.state == PeriodState::Ended
    }
}

/// Midnight at the start of `d` in Norwegian time.
pub fn oslo_midnight(d: Date) -> OffsetDateTime {
    let guess = d.midnight().assume_utc();
    let offset = crate::audit::review::oslo(guess - Duration::hours(2)).offset();
    d.midnight().assume_offset(offset)
}

/// A date from an `<input type="date">` (YYYY-MM-DD).
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(
        s.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// Why a period typed into a form was refused (a catalogue key).
pub type PeriodProblem = (&'static str, &'static str);

/// The period a form gives with `from` (first day; today when empty) and `to` (last day,
/// inclusive; open-ended when empty), days in Norwegian time. The error names the field and
/// the message key.
pub fn form_period(
    f: &HashMap<String, String>,
    now: OffsetDateTime,
) -> Result<Period, PeriodProblem> {
    let field = |k: &str| f.get(k).map(|s| s.trim()).unwrap_or_default();
    let start = match field("from") {
        "" => now,
        s => match parse_date(s) {
            Some(d) => oslo_midnight(d),
            None => return Err(("from", "admin.period.bad_date")),
        },
    };
    let end = match field("to") {
        "" => None,
        s => match parse_date(s).and_then(Date::next_day) {
            Some(d) => Some(oslo_midnight(d)),
            None => return Err(("to", "admin.period.bad_date")),
        },
    };
    if end.is_some_and(|e| e <= start) {
        return Err(("to", "admin.period.end_before_start"));
    }
    Period::new(start, end).map_err(|_| ("to", "admin.period.end_before_start"))
}

/// The tenant's people by id, and its org units by id.
pub struct Directory {
    pub persons: HashMap<PersonId, Person>,
    pub units: Vec<OrgUnit>,
}

impl Directory {
    pub async fn load(web: &Web) -> Result<Self, PageError> {
        let tenant = &web.principal.tenant.id;
        let persons = web
            .state
            .store
            .list_persons(tenant, None)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let units = web.state.store.list_org_units(tenant).await?;
        Ok(Self { persons, units })
    }

    /// A staff member's or relative's name; a patient's is never opened here.
    pub fn name(&self, id: &PersonId) -> String {
        self.persons
            .get(id)
            .and_then(|p| p.display_name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    pub fn unit_name(&self, id: &OrgUnitId) -> String {
        self.units
            .iter()
            .find(|u| &u.id == id)
            .map_or_else(|| id.to_string(), |u| u.name.clone())
    }

    /// The org units in tree order, each with its depth.
    pub fn unit_tree(&self) -> Vec<(usize, &OrgUnit)> {
        fn walk<'a>(
            units: &'a [OrgUnit],
            parent: Option<&OrgUnitId>,
            depth: usize,
            out: &mut Vec<(usize, &'a OrgUnit)>,
        ) {
            for u in units.iter().filter(|u| u.parent.as_ref() == parent) {
                out.push((depth, u));
                walk(units, Some(&u.id), depth + 1, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.units, None, 0, &mut out);
        // Units whose parent is unknown (should not happen) still show.
        for u in &self.units {
            if !out.iter().any(|(_, x)| x.id == u.id) {
                out.push((0, u));
            }
        }
        out
    }

    /// Staff, sorted by name, as (id, name) for a select.
    pub fn staff_options(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .persons
            .values()
            .filter(|p| p.kind == tillit_core::PersonKind::Staff)
            .map(|p| (p.id.to_string(), self.name(&p.id)))
            .collect();
        v.sort_by_key(|(_, name)| name.to_lowercase());
        v
    }

    /// Patients by id (pseudonymous), in the order they were registered.
    pub fn patient_ids(&self) -> Vec<String> {
        let mut v: Vec<&Person> = self
            .persons
            .values()
            .filter(|p| p.kind == tillit_core::PersonKind::Patient)
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v.into_iter().map(|p| p.id.to_string()).collect()
    }

    /// The units as (id, indented name) for a select.
    pub fn unit_options(&self) -> Vec<(String, String)> {
        self.unit_tree()
            .into_iter()
            .map(|(depth, u)| {
                (
                    u.id.to_string(),
                    format!("{}{}", "– ".repeat(depth), u.name),
                )
            })
            .collect()
    }
}

/// Where a role assignment or access rule comes from, in words: made here by an admin, or
/// derived from a FHIR resource the EPJ sent (and so changed there).
pub fn source_label(source: &str, tr: Tr) -> String {
    if source == "admin" {
        tr.t("admin.source.admin").to_string()
    } else {
        tr.t1(
            "admin.source.fhir",
            source.split('/').next().unwrap_or_default(),
        )
    }
}

/// A form error shown in place: which field, and the sentence.
#[derive(Debug, Clone, Default)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn dates_are_norwegian_midnights() {
        assert_eq!(
            oslo_midnight(date!(2026 - 01 - 15)),
            datetime!(2026-01-14 23:00 UTC)
        );
        assert_eq!(
            oslo_midnight(date!(2026 - 07 - 15)),
            datetime!(2026-07-14 22:00 UTC)
        );
        assert_eq!(parse_date("2026-02-30"), None);
    }

    #[test]
    fn a_form_period_starts_now_or_later_and_ends_after_its_last_day() {
        let now = datetime!(2026-03-10 12:00 UTC);
        let f = |from: &str, to: &str| {
            HashMap::from([
                ("from".to_string(), from.to_string()),
                ("to".to_string(), to.to_string()),
            ])
        };
        let p = form_period(&f("", ""), now).unwrap();
        assert_eq!((p.start(), p.end()), (now, None));
        let p = form_period(&f("2026-03-10", "2026-03-31"), now).unwrap();
        assert_eq!(p.start(), datetime!(2026-03-09 23:00 UTC));
        assert_eq!(p.end(), Some(datetime!(2026-03-31 22:00 UTC)));
        let p = form_period(&f("2026-04-01", ""), now).unwrap();
        assert_eq!(p.start(), datetime!(2026-03-31 22:00 UTC));
        assert_eq!(
            form_period(&f("2026-03-12", "2026-03-11"), now).err(),
            Some(("to", "admin.period.end_before_start"))
        );
        assert_eq!(
            form_period(&f("12.03.2026", ""), now).err(),
            Some(("from", "admin.period.bad_date"))
        );
        let shown = ShownPeriod::new(
            &form_period(&f("2026-03-01", "2026-03-31"), now).unwrap(),
            now,
            Tr::new(super::super::i18n::Lang::Nb),
        );
        assert_eq!(
            (shown.from.as_str(), shown.to.as_str(), shown.state),
            ("01.03.2026", "31.03.2026", PeriodState::Active)
        );
    }
}
