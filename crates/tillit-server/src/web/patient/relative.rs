//! The relative's pages: the patients they are linked to, exactly what each patient's consent
//! covers (categories, read only, period), and what they may see of one patient, read through
//! the FHIR service as the relative (checked and audited; the patient sees it in their log).

use super::super::{Audience, Layout, PageError, Web, render};
use super::record::{self, View};
use super::{categories_words, relative_scope, scope_now};
use crate::authz::{Actor, Subject};
use crate::fhir::service::Fhir;
use askama::Template;
use axum::extract::Path;
use axum::response::Response;
use tillit_core::{AccessKind, PersonId};
use tillit_fhir::category::Category;
use tillit_store::RelativeLink;

struct ConsentRow {
    words: String,
    since: String,
    until: Option<String>,
    current: bool,
}

struct PatientRow {
    id: String,
    label: String,
    relationship: String,
    /// The label is the patient's name (not the relationship).
    named: bool,
    consents: Vec<ConsentRow>,
    /// A consent is in force now, so there is something to see.
    open: bool,
}

#[derive(Template)]
#[template(path = "web/patient/relative_home.html")]
struct HomePage {
    l: Layout,
    rows: Vec<PatientRow>,
}

#[derive(Template)]
#[template(path = "web/patient/relative_patient.html")]
struct PatientPage {
    l: Layout,
    label: String,
    scope: String,
    view: View,
}

/// The relative's links to patients.
async fn links(web: &Web) -> Result<Vec<RelativeLink>, PageError> {
    let me = &web.principal.user.person;
    Ok(web
        .state
        .store
        .relative_links(&web.principal.tenant.id, me)
        .await?
        .into_iter()
        .filter(|l| &l.relative == me)
        .collect())
}

/// How the page names a patient: their name when the consent covers their personal details
/// (an audited read), else by the relationship. The name is sealed in the patient's record, so
/// there is no other way to it. Returns whether it is the name.
async fn label_of(web: &Web, subject: &Subject, link: &RelativeLink) -> (String, bool) {
    let patient = link.patient.as_str();
    if scope_now(subject, patient, web.now())
        .iter()
        .any(|c| c == Category::Demographics.code())
    {
        let fhir = Fhir::new(&web.state, Actor::User(subject));
        if let Ok((_, p)) = fhir.read("Patient", patient).await
            && let Some(name) = p
                .get("name")
                .and_then(|n| n.as_array())
                .and_then(|n| n.first())
                .map(|n| {
                    let given: Vec<&str> = n
                        .get("given")
                        .and_then(|g| g.as_array())
                        .map(|g| g.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    let family = n.get("family").and_then(|f| f.as_str()).unwrap_or_default();
                    format!("{} {family}", given.join(" ")).trim().to_string()
                })
                .filter(|n| !n.is_empty())
        {
            return (name, true);
        }
    }
    (
        web.tr.t1("patient.relative.unnamed", &link.relationship),
        false,
    )
}

/// `GET /relative`
pub async fn home(web: Web) -> Response {
    let r = async {
        web.require(Audience::Relative)?;
        let tr = web.tr;
        let now = web.now();
        let subject = web.subject().await?;
        let me = &web.principal.user.person;
        let rules: Vec<_> = web
            .state
            .store
            .access_rules_concerning(&web.principal.tenant.id, me, &[])
            .await?
            .into_iter()
            .filter(|r| {
                r.rule.kind == AccessKind::RelativeConsent
                    && super::names_person(&r.rule.party, me)
                    && super::not_ended(r, now)
            })
            .collect();
        let mut rows = Vec::new();
        for link in links(&web).await? {
            let consents: Vec<ConsentRow> = rules
                .iter()
                .filter(|r| r.rule.patient == link.patient)
                .map(|r| ConsentRow {
                    words: categories_words(tr, &relative_scope(r)),
                    since: tr.date(r.rule.period.start()),
                    until: r.rule.period.end().map(|e| super::last_day(tr, e)),
                    current: r.rule.period.contains(now),
                })
                .collect();
            let (label, named) = label_of(&web, &subject, &link).await;
            rows.push(PatientRow {
                id: link.patient.to_string(),
                label,
                named,
                relationship: link.relationship.clone(),
                open: consents.iter().any(|c| c.current),
                consents,
            });
        }
        render(&HomePage {
            l: web.layout(tr.t("patient.relative.title")),
            rows,
        })
    }
    .await;
    web.finish(r)
}

/// `GET /relative/{patient}`: what the relative may see of a patient they are linked to.
pub async fn patient(web: Web, Path(id): Path<String>) -> Response {
    let r = async {
        web.require(Audience::Relative)?;
        let tr = web.tr;
        let Ok(pid) = PersonId::parse(&id) else {
            return Err(PageError::not_found());
        };
        // Only patients the relative is linked to; others are not told apart from none.
        let Some(link) = links(&web).await?.into_iter().find(|l| l.patient == pid) else {
            return Err(PageError::not_found());
        };
        let subject = web.subject().await?;
        let scope = scope_now(&subject, &id, web.now());
        let view = if scope.is_empty() {
            View {
                facts: Vec::new(),
                name: String::new(),
                sections: Vec::new(),
                hidden_told: Vec::new(),
            }
        } else {
            let fhir = Fhir::new(&web.state, Actor::User(&subject));
            record::load(&fhir, tr, &id, Some(&scope)).await?
        };
        let label = if view.name.is_empty() {
            tr.t1("patient.relative.unnamed", &link.relationship)
        } else {
            view.name.clone()
        };
        render(&PatientPage {
            l: web.layout(label.clone()),
            label,
            scope: categories_words(tr, &scope),
            view,
        })
    }
    .await;
    web.finish(r)
}
