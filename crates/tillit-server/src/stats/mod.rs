//! Anonymous statistics for tenants and the operator (`GET /admin/stats`, `tillit stats`);
//! the method is in `docs/design/statistics.md`.
//!
//! Counts per tenant, measure, ISO week, unit and category:
//! - `records.created`: first versions written, by the category of the record and the org
//!   unit of the patient's care relationship that day (the earliest begun; the unit of the
//!   named staff member's role when the relationship names a person);
//! - `accesses`, `accesses.refused`, `emergency.accesses`: reads, searches and history
//!   calls by people (one per audit event and category), by the actor's org unit.
//!
//! Every group (one measure, one week) is suppressed with [`suppress::suppress`]: no number
//! from 1 to k-1 is ever shown, and no suppressed cell can be worked out from the total.
//! Units with fewer than k staff are pooled as "(other units)". Nothing names a person.

pub mod suppress;

use crate::error::{AppError, AppResult};
use crate::session::Principal;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use suppress::{Cell, suppress};
use tillit_core::{AccessKind, OrgUnitId, PersonId, Role, TenantId};
use tillit_store::{AccessParty, AuditFilter, AuditOutcome, Store, StoreError, Tenant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const RECORDS_CREATED: &str = "records.created";
pub const ACCESSES: &str = "accesses";
pub const ACCESSES_REFUSED: &str = "accesses.refused";
pub const EMERGENCY_ACCESSES: &str = "emergency.accesses";

/// The smallest k accepted: smaller cells than this are never shown to anyone.
pub const MIN_K: u64 = 5;
pub const MAX_K: u64 = 1_000;
/// A unit with fewer staff than k is pooled under this name.
pub const OTHER_UNITS: &str = "(other units)";
pub const NO_UNIT: &str = "(no unit)";
pub const NO_CATEGORY: &str = "(none)";

/// What to count: k and the period `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub k: u64,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

/// A date (2026-11-30, midnight UTC) or an RFC 3339 time.
pub fn parse_instant(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339)
                .or_else(|_| {
                    time::Date::parse(
                        s,
                        &time::macros::format_description!("[year]-[month]-[day]"),
                    )
                    .map(|d| d.midnight().assume_utc())
                })
                .map_err(|_| format!("{name} must be a date (2026-11-30) or an RFC 3339 time"))
        })
        .transpose()
}

impl Options {
    pub fn parse(k: Option<&str>, from: Option<&str>, to: Option<&str>) -> Result<Self, String> {
        let k = match k.map(str::trim) {
            None | Some("") => MIN_K,
            Some(s) => s
                .parse::<u64>()
                .map_err(|_| format!("k must be a whole number from {MIN_K} to {MAX_K}"))?,
        };
        Self::new(k, parse_instant("from", from)?, parse_instant("to", to)?)
    }

    pub fn new(
        k: u64,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<Self, String> {
        if !(MIN_K..=MAX_K).contains(&k) {
            return Err(format!("k must be from {MIN_K} to {MAX_K}, not {k}"));
        }
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err("from must be before to".into());
        }
        Ok(Self { k, from, to })
    }
}

/// The ISO week of a day, `2026-W48`.
pub fn iso_week(day: time::Date) -> String {
    let (year, week, _) = day.to_iso_week_date();
    format!("{year}-W{week:02}")
}

#[derive(Debug, Default, Clone)]
struct Acc {
    count: u64,
    patients: HashSet<String>,
    actors: HashSet<String>,
}

impl Acc {
    fn add(&mut self, n: u64, patient: Option<&str>, actor: Option<&str>) {
        self.count += n;
        if let Some(p) = patient {
            self.patients.insert(p.to_string());
        }
        if let Some(a) = actor {
            self.actors.insert(a.to_string());
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        self.patients.extend(other.patients.iter().cloned());
        self.actors.extend(other.actors.iter().cloned());
    }
}

/// (measure, week) → (unit, category) → counts. Never leaves this module.
type Raw = BTreeMap<(&'static str, String), BTreeMap<(String, String), Acc>>;

/// How units are named: by name when at least k staff have worked there.
struct Units {
    names: HashMap<OrgUnitId, String>,
    /// Each staff member's units over time.
    roles: HashMap<PersonId, Vec<(tillit_core::Period, OrgUnitId)>>,
}

impl Units {
    async fn load(store: &Arc<dyn Store>, tenant: &TenantId, k: u64) -> Result<Self, StoreError> {
        let assignments = store.tenant_role_assignments(tenant).await?;
        let mut staff: HashMap<OrgUnitId, HashSet<PersonId>> = HashMap::new();
        let mut roles: HashMap<PersonId, Vec<_>> = HashMap::new();
        for (a, _) in assignments {
            staff
                .entry(a.org_unit.clone())
                .or_default()
                .insert(a.person.clone());
            roles
                .entry(a.person)
                .or_default()
                .push((a.period, a.org_unit));
        }
        let names = store
            .list_org_units(tenant)
            .await?
            .into_iter()
            .map(|u| {
                let big = staff
                    .get(&u.id)
                    .is_some_and(|s| u64::try_from(s.len()).unwrap_or(0) >= k);
                (u.id, if big { u.name } else { OTHER_UNITS.to_string() })
            })
            .collect();
        Ok(Self { names, roles })
    }

    fn label(&self, unit: Option<&str>) -> String {
        match unit.and_then(|u| OrgUnitId::parse(u).ok()) {
            Some(id) => self
                .names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| OTHER_UNITS.to_string()),
            None => NO_UNIT.to_string(),
        }
    }

    /// The first (by id) unit a staff member held a role in on `day`.
    fn of_person(&self, person: &PersonId, day: time::Date) -> Option<String> {
        self.roles
            .get(person)?
            .iter()
            .filter(|(p, _)| overlaps(p, day))
            .map(|(_, u)| u.to_string())
            .min()
    }
}

/// Whether a period overlaps a UTC day.
fn overlaps(p: &tillit_core::Period, day: time::Date) -> bool {
    let start = day.midnight().assume_utc();
    let end = start + time::Duration::days(1);
    p.start() < end && p.end().is_none_or(|e| e > start)
}

/// Counts a tenant's events of the period. The inside of the statistics: patient and actor
/// ids are held only to count distinct people and never leave this module.
async fn gather(store: &Arc<dyn Store>, tenant: &TenantId, o: &Options) -> Result<Raw, StoreError> {
    let units = Units::load(store, tenant, o.k).await?;
    let mut raw: Raw = BTreeMap::new();
    let mut add = |measure: &'static str,
                   day: time::Date,
                   unit: String,
                   category: &str,
                   n: u64,
                   patient: Option<&str>,
                   actor: Option<&str>| {
        raw.entry((measure, iso_week(day)))
            .or_default()
            .entry((unit, category.to_string()))
            .or_default()
            .add(n, patient, actor);
    };

    // Records created, by the unit caring for the patient that day.
    let care = store.access_rules_of_kind(tenant, AccessKind::Care).await?;
    let mut care_of: HashMap<String, Vec<&tillit_store::AccessRule>> = HashMap::new();
    for r in &care {
        care_of
            .entry(r.rule.patient.to_string())
            .or_default()
            .push(r);
    }
    for list in care_of.values_mut() {
        list.sort_by(|a, b| (a.rule.period.start(), &a.id).cmp(&(b.rule.period.start(), &b.id)));
    }
    for c in store.resource_creations(tenant, o.from, o.to).await? {
        let unit = c.patient.as_ref().and_then(|p| {
            care_of
                .get(p)?
                .iter()
                .filter(|r| overlaps(&r.rule.period, c.day))
                .find_map(|r| match &r.rule.party {
                    AccessParty::OrgUnit(u) => Some(u.to_string()),
                    AccessParty::Person(s) => units.of_person(s, c.day),
                    AccessParty::Everyone => None,
                })
        });
        add(
            RECORDS_CREATED,
            c.day,
            units.label(unit.as_deref()),
            &c.category,
            c.count,
            c.patient.as_deref(),
            None,
        );
    }

    // Accesses, from the audit log, by the actor's unit.
    let mut next = 0u64;
    loop {
        let page = store
            .audit_search(
                tenant,
                &AuditFilter {
                    from: o.from,
                    to: o.to,
                    from_seq: Some(next),
                    limit: 5_000,
                    ..AuditFilter::default()
                },
            )
            .await?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for e in &page {
            let ev = &e.event;
            if !matches!(ev.action.as_str(), "read" | "search" | "history")
                || ev.actor.kind.as_deref() == Some("system")
            {
                continue;
            }
            let mut measures = Vec::with_capacity(2);
            match ev.outcome {
                AuditOutcome::Success => {
                    measures.push(ACCESSES);
                    if ev.basis.as_deref() == Some("emergency") {
                        measures.push(EMERGENCY_ACCESSES);
                    }
                }
                AuditOutcome::Denied => measures.push(ACCESSES_REFUSED),
                AuditOutcome::Failure => continue,
            }
            let unit = units.label(ev.actor.org_units.iter().min().map(String::as_str));
            let day = ev.at.to_offset(time::UtcOffset::UTC).date();
            let categories: Vec<&str> = if ev.categories.is_empty() {
                vec![NO_CATEGORY]
            } else {
                ev.categories.iter().map(String::as_str).collect()
            };
            let actor = ev
                .actor
                .on_behalf_of
                .as_deref()
                .or(ev.actor.person.as_deref());
            for m in &measures {
                for c in &categories {
                    add(m, day, unit.clone(), c, 1, ev.patient.as_deref(), actor);
                }
            }
        }
    }
    Ok(raw)
}

/// One group after suppression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub measure: &'static str,
    pub week: String,
    pub total: Option<u64>,
    /// (label, count): `unit|category` for a tenant, the tenant for the platform.
    pub cells: Vec<(Vec<String>, Option<u64>)>,
}

fn tenant_groups(raw: &Raw, k: u64) -> Vec<Group> {
    raw.iter()
        .map(|((measure, week), cells)| {
            let s = suppress(
                cells
                    .iter()
                    .map(|((unit, category), a)| Cell {
                        key: vec![unit.clone(), category.clone()],
                        count: a.count,
                        patients: u64::try_from(a.patients.len()).unwrap_or(u64::MAX),
                        actors: u64::try_from(a.actors.len()).unwrap_or(u64::MAX),
                        forced: false,
                    })
                    .collect(),
                k,
            );
            Group {
                measure,
                week: week.clone(),
                total: s.total,
                cells: s.cells,
            }
        })
        .collect()
}

/// A tenant's statistics.
#[derive(Debug, Clone)]
pub struct TenantStats {
    pub tenant: Tenant,
    pub options: Options,
    pub groups: Vec<Group>,
}

pub async fn for_tenant(
    store: &Arc<dyn Store>,
    tenant: &Tenant,
    o: Options,
) -> Result<TenantStats, StoreError> {
    let raw = gather(store, &tenant.id, &o).await?;
    Ok(TenantStats {
        tenant: tenant.clone(),
        options: o,
        groups: tenant_groups(&raw, o.k),
    })
}

/// The platform's statistics: per measure and week, each tenant's total (suppressed
/// wherever the tenant's own table withholds it, and protected the same way) and the sum.
pub async fn for_platform(store: &Arc<dyn Store>, o: Options) -> Result<Vec<Group>, StoreError> {
    let operator = store.operator_tenant().await?;
    let mut per: BTreeMap<(&'static str, String), Vec<Cell<Vec<String>>>> = BTreeMap::new();
    for t in store.list_tenants().await? {
        if Some(&t.id) == operator.as_ref() {
            continue;
        }
        let raw = gather(store, &t.id, &o).await?;
        let shown: HashMap<(&'static str, String), Option<u64>> = tenant_groups(&raw, o.k)
            .into_iter()
            .map(|g| ((g.measure, g.week), g.total))
            .collect();
        for (key, cells) in raw {
            let mut all = Acc::default();
            for a in cells.values() {
                all.merge(a);
            }
            let withheld = shown.get(&key).is_some_and(Option::is_none);
            per.entry(key).or_default().push(Cell {
                key: vec![t.name.clone(), t.id.to_string()],
                count: all.count,
                patients: u64::try_from(all.patients.len()).unwrap_or(u64::MAX),
                actors: u64::try_from(all.actors.len()).unwrap_or(u64::MAX),
                forced: withheld,
            });
        }
    }
    Ok(per
        .into_iter()
        .map(|((measure, week), cells)| {
            let s = suppress(cells, o.k);
            Group {
                measure,
                week,
                total: s.total,
                cells: s.cells,
            }
        })
        .collect())
}

fn instant(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

pub const METHOD: &str = "Counts per measure, ISO week (UTC), unit and category. A cell below k, or drawn from fewer than k patients or people acting, is null; further cells are nulled so that no null can be worked out from the week's total (each null could be anything from 1 to k or more), and a total that cannot be protected is null too. Units with fewer than k staff are pooled as '(other units)'. See docs/design/statistics.md.";

impl TenantStats {
    pub fn to_json(&self) -> Value {
        json!({
            "tenant": {"id": self.tenant.id.to_string(), "name": self.tenant.name},
            "k": self.options.k,
            "from": instant(self.options.from),
            "to": instant(self.options.to),
            "method": METHOD,
            "groups": self.groups.iter().map(|g| json!({
                "measure": g.measure,
                "week": g.week,
                "total": g.total,
                "cells": g.cells.iter().map(|(key, count)| json!({
                    "unit": key.first(),
                    "category": key.get(1),
                    "count": count,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// `measure,week,unit,category,count`; each week's total as unit and category `(all)`;
    /// a suppressed number as `suppressed`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("measure,week,unit,category,count\n");
        let n = |v: Option<u64>| v.map_or_else(|| "suppressed".to_string(), |n| n.to_string());
        for g in &self.groups {
            for (key, count) in &g.cells {
                let field = |i: usize| csv_field(key.get(i).map(String::as_str).unwrap_or(""));
                out.push_str(&format!(
                    "{},{},{},{},{}\n",
                    g.measure,
                    g.week,
                    field(0),
                    field(1),
                    n(*count)
                ));
            }
            out.push_str(&format!(
                "{},{},(all),(all),{}\n",
                g.measure,
                g.week,
                n(g.total)
            ));
        }
        out
    }
}

/// RFC 4180: quoted when it holds a comma, quote or line break (and a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so a spreadsheet does not run it as a formula).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn platform_json(groups: &[Group], o: &Options) -> Value {
    json!({
        "scope": "platform",
        "k": o.k,
        "from": instant(o.from),
        "to": instant(o.to),
        "method": METHOD,
        "groups": groups.iter().map(|g| json!({
            "measure": g.measure,
            "week": g.week,
            "total": g.total,
            "cells": g.cells.iter().map(|(key, count)| json!({
                "tenant": key.first(),
                "tenant_id": key.get(1),
                "count": count,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /admin/stats?k=&from=&to=`: a tenant admin gets the own tenant's statistics; a
/// platform operator gets every tenant's totals. Nobody else.
pub async fn get_stats(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> AppResult<Json<Value>> {
    let operator = state.store.operator_tenant().await?;
    let is_operator_tenant = operator.as_ref() == Some(&p.tenant.id);
    let platform = is_operator_tenant && p.roles.contains(&Role::Operator);
    let tenant_admin = !is_operator_tenant && p.roles.contains(&Role::TenantAdmin);
    if !platform && !tenant_admin {
        return Err(AppError::Forbidden(
            "statistics need the role tenant_admin (or operator, for the platform)".into(),
        ));
    }
    let o = Options::parse(
        q.get("k").map(String::as_str),
        q.get("from").map(String::as_str),
        q.get("to").map(String::as_str),
    )
    .map_err(AppError::BadRequest)?;
    if platform {
        let groups = for_platform(&state.store, o).await?;
        Ok(Json(platform_json(&groups, &o)))
    } else {
        Ok(Json(
            for_tenant(&state.store, &p.tenant, o).await?.to_json(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn weeks_are_iso_weeks() {
        use time::macros::date;
        assert_eq!(iso_week(date!(2026 - 11 - 30)), "2026-W49");
        assert_eq!(iso_week(date!(2027 - 01 - 01)), "2026-W53");
        assert_eq!(iso_week(date!(2025 - 12 - 29)), "2026-W01");
    }

    #[test]
    fn options_refuse_a_small_k_and_an_empty_period() {
        assert_eq!(Options::parse(None, None, None).unwrap().k, 5);
        assert!(Options::parse(Some("4"), None, None).is_err());
        assert!(Options::parse(Some("five"), None, None).is_err());
        assert!(Options::parse(None, Some("2026-12-01"), Some("2026-11-01")).is_err());
        assert!(Options::parse(None, Some("yesterday"), None).is_err());
        let o = Options::parse(Some("10"), Some("2026-11-01"), Some("2026-12-01T00:00:00Z"));
        assert_eq!(o.unwrap().k, 10);
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("Hjemmetjenesten"), "Hjemmetjenesten");
        assert_eq!(csv_field("Nord, Sør"), "\"Nord, Sør\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }
}
