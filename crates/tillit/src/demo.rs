//! Deterministic demo data: two tenants, an organisation, one staff member per role, patients
//! with synthetic Norwegian national ids, relatives, and care relationships chosen so that
//! every access case can be shown. Also writes `demo-credentials.json` (a scripting contract).

use crate::Ctx;
use crate::demo_records::{self, DemoPatientRecord, DemoStaffRecord};
use crate::people::{self, NewAccount, PatientProfile};
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use tillit_core::AccessKind;
use tillit_core::national_id::{NationalId, Sex};
use tillit_core::{OrgUnitId, Period, PersonId, PersonKind, Role, Username};
use tillit_crypto::{random_token, token_hash};
use tillit_store::{
    AccessParty, Delegation, NewAccessRule, NewApiToken, NewOrgUnit, NewRoleAssignment, Withheld,
    active_roles,
};
use time::macros::date;
use time::{Date, Duration};

pub const NORDBY: &str = "Nordby kommune";
pub const SORBY: &str = "Sørby sykehus";
/// The platform's own organisation: its staff are operators, with no tenant data without a
/// tenant admin's support grant.
pub const OPERATOR_TENANT: &str = "Tillit drift";
const OPERATOR: &str = "drift.olsen";

struct DemoPatient {
    key: &'static str,
    given: &'static str,
    family: &'static str,
    born: Date,
    sex: Sex,
}

const fn p(
    key: &'static str,
    given: &'static str,
    family: &'static str,
    born: Date,
    sex: Sex,
) -> DemoPatient {
    DemoPatient {
        key,
        given,
        family,
        born,
        sex,
    }
}

use Sex::{Female as F, Male as M};

const NORDBY_PATIENTS: &[DemoPatient] = &[
    p("p01", "Astrid", "Haugland", date!(1938 - 04 - 12), F),
    p("p02", "Kjell", "Bakken", date!(1941 - 09 - 03), M),
    p("p03", "Solveig", "Nygaard", date!(1935 - 01 - 27), F),
    p("p04", "Arne", "Lie", date!(1947 - 06 - 18), M),
    p("p05", "Berit", "Solberg", date!(1952 - 11 - 30), F),
    p("p06", "Odd", "Kristiansen", date!(1944 - 02 - 09), M),
    p("p07", "Ingrid", "Strand", date!(1939 - 07 - 21), F),
    p("p08", "Per", "Eide", date!(1950 - 12 - 05), M),
    p("p09", "Gunvor", "Moen", date!(1933 - 03 - 14), F),
    p("p10", "Tor", "Halvorsen", date!(1946 - 10 - 22), M),
    p("p11", "Randi", "Jacobsen", date!(1942 - 05 - 08), F),
    p("p12", "Bjørn", "Pedersen", date!(1937 - 08 - 16), M),
    p("p13", "Liv", "Berge", date!(1949 - 04 - 01), F),
    p("p14", "Harald", "Dahl", date!(1940 - 11 - 11), M),
    p("p15", "Marit", "Johansen", date!(1936 - 06 - 25), F),
    p("p16", "Egil", "Sæther", date!(1945 - 01 - 19), M),
    p("p17", "Karin", "Andersen", date!(1953 - 09 - 28), F),
    p("p18", "Svein", "Olsen", date!(1948 - 03 - 07), M),
    p("p19", "Turid", "Larsen", date!(1934 - 12 - 02), F),
    p("p20", "Rolf", "Aasen", date!(1951 - 07 - 13), M),
    p("p21", "Ragnhild", "Fjeld", date!(1958 - 02 - 23), F),
    p("p22", "Nils", "Vik", date!(1943 - 10 - 30), M),
    p("p23", "Eva", "Hovland", date!(1961 - 05 - 17), F),
];

const SORBY_PATIENTS: &[DemoPatient] = &[
    p("s01", "Hilde", "Lunde", date!(1955 - 08 - 09), F),
    p("s02", "Geir", "Nilsen", date!(1962 - 01 - 04), M),
    p("s03", "Anne", "Rønning", date!(1970 - 03 - 29), F),
];

struct DemoStaff {
    username: &'static str,
    name: &'static str,
    role: Role,
    unit: &'static str,
    hpr: &'static str,
}

const UNIT_ROOT: &str = "Helse og omsorg";
const UNIT_NORD: &str = "Hjemmetjenesten Nord";
const UNIT_SOR: &str = "Hjemmetjenesten Sør";
const UNIT_LEGE: &str = "Legekontoret";
const UNIT_SORBY: &str = "Medisinsk avdeling";

const NORDBY_STAFF: &[DemoStaff] = &[
    DemoStaff {
        username: "lege.lund",
        name: "Ingrid Lund",
        role: Role::Physician,
        unit: UNIT_LEGE,
        hpr: "9144889",
    },
    DemoStaff {
        username: "sykepleier.haugen",
        name: "Marte Haugen",
        role: Role::Nurse,
        unit: UNIT_NORD,
        hpr: "9001234",
    },
    DemoStaff {
        username: "sykepleier.dahl",
        name: "Eirik Dahl",
        role: Role::Nurse,
        unit: UNIT_SOR,
        hpr: "9005678",
    },
    DemoStaff {
        username: "helsefagarbeider.aas",
        name: "Jonas Aas",
        role: Role::CareAssistant,
        unit: UNIT_NORD,
        hpr: "9009012",
    },
    DemoStaff {
        username: "sekretaer.berg",
        name: "Lise Berg",
        role: Role::Secretary,
        unit: UNIT_LEGE,
        hpr: "",
    },
    DemoStaff {
        username: "sikkerhet.moe",
        name: "Trond Moe",
        role: Role::SecurityOfficer,
        unit: UNIT_ROOT,
        hpr: "",
    },
    DemoStaff {
        username: "admin.nilsen",
        name: "Hege Nilsen",
        role: Role::TenantAdmin,
        unit: UNIT_ROOT,
        hpr: "",
    },
    // The tenant's EPJ integration: an API client trusted with all of the tenant's records
    // by the tenant's own policy (`tenant.integration`).
    DemoStaff {
        username: "integrasjon.epj",
        name: "EPJ-integrasjon",
        role: Role::Integration,
        unit: UNIT_ROOT,
        hpr: "",
    },
];

const SORBY_STAFF: &[DemoStaff] = &[DemoStaff {
    username: "lege.sorby",
    name: "Kristoffer Bø",
    role: Role::Physician,
    unit: UNIT_SORBY,
    hpr: "9144900",
}];

/// Who has a need to know whom. Unit relationships reach everyone with a role in that unit.
/// Chosen so that staff share patients (p01–p03), every staff member has patients outside
/// their list, p22's relationship has ended and p23's has not begun, and p21 has no one.
const UNIT_CARE: &[(&str, &[&str], &str)] = &[
    (
        UNIT_LEGE,
        &[
            "p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "p09", "p10",
        ],
        "Fastlege",
    ),
    (
        UNIT_NORD,
        &["p09", "p10", "p11", "p12", "p13", "p14"],
        "Hjemmesykepleie, vedtak",
    ),
    (
        UNIT_SOR,
        &["p15", "p16", "p17", "p18", "p19", "p20"],
        "Hjemmesykepleie, vedtak",
    ),
];
const PERSONAL_CARE: &[(&str, &[&str], &str)] =
    &[("sykepleier.haugen", &["p01", "p02", "p03"], "Primærkontakt")];

/// Patients who can log in, and relatives (username, name, patient, relationship).
const PATIENT_LOGINS: &[(&str, &str)] = &[
    ("p01", "astrid.haugland"),
    ("p05", "berit.solberg"),
    ("p21", "ragnhild.fjeld"),
];
/// (username, name, patient, relationship, the categories the patient's consent covers).
#[allow(clippy::type_complexity)]
const RELATIVES: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "kari.haugland",
        "Kari Haugland",
        "p01",
        "datter",
        &["appointments", "messages"],
    ),
    (
        "magnus.solberg",
        "Magnus Solberg",
        "p05",
        "sønn",
        &["appointments", "messages", "medications"],
    ),
];

/// The deterministic demo password of a user: known, printed, and only ever for the demo.
fn demo_password(username: &str) -> String {
    let h = token_hash(&format!("tillit-demo-password:{username}"));
    format!("demo-{}", hex::encode(h.get(..6).unwrap_or_default()))
}

/// The deterministic demo TOTP secret (base32 of 20 bytes).
fn demo_totp(username: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let h = token_hash(&format!("tillit-demo-totp:{username}"));
    // 160 bits = 32 base32 characters, 5 bits each.
    (0..32)
        .map(|i| {
            let bit = i * 5;
            let byte = bit / 8;
            let word = (u16::from(h.get(byte).copied().unwrap_or(0)) << 8)
                | u16::from(h.get(byte + 1).copied().unwrap_or(0));
            let idx = (word >> (11 - bit % 8)) & 0x1f;
            char::from(ALPHABET.get(usize::from(idx)).copied().unwrap_or(b'A'))
        })
        .collect()
}

fn pid(tenant: &str, key: &str) -> PersonId {
    PersonId::derived(&format!("{tenant}/{key}"))
}

fn uid(tenant: &str, name: &str) -> OrgUnitId {
    OrgUnitId::derived(&format!("{tenant}/unit/{name}"))
}

/// Seeds an empty store. Idempotence is the caller's: it runs only on an empty store.
pub async fn seed(ctx: &Ctx) -> Result<()> {
    let now = ctx.clock_now();
    let since = now - Duration::days(365);
    let open = Period::new(since, None)?;

    for (tenant_name, units, staff, patients) in [
        (
            NORDBY,
            vec![
                (UNIT_ROOT, None),
                (UNIT_NORD, Some(UNIT_ROOT)),
                (UNIT_SOR, Some(UNIT_ROOT)),
                (UNIT_LEGE, Some(UNIT_ROOT)),
            ],
            NORDBY_STAFF,
            NORDBY_PATIENTS,
        ),
        (SORBY, vec![(UNIT_SORBY, None)], SORBY_STAFF, SORBY_PATIENTS),
    ] {
        let tenant = ctx.store.create_tenant(tenant_name, now).await?;
        for (name, parent) in units {
            ctx.store
                .create_org_unit(
                    &NewOrgUnit {
                        id: uid(tenant_name, name),
                        tenant: tenant.id.clone(),
                        parent: parent.map(|p| uid(tenant_name, p)),
                        name: name.to_string(),
                    },
                    now,
                )
                .await?;
        }
        for s in staff {
            let person = pid(tenant_name, s.username);
            people::create_staff(
                ctx,
                &tenant.id,
                &person,
                s.name,
                (!s.hpr.is_empty()).then_some(s.hpr),
            )
            .await?;
            people::create_account(
                ctx,
                &NewAccount {
                    tenant: &tenant.id,
                    person: &person,
                    username: Username::parse(s.username)?,
                    password: demo_password(s.username),
                    totp_secret: Some(demo_totp(s.username)),
                },
            )
            .await?;
            ctx.store
                .assign_role(
                    &NewRoleAssignment {
                        tenant: tenant.id.clone(),
                        person,
                        role: s.role,
                        org_unit: uid(tenant_name, s.unit),
                        period: open,
                    },
                    now,
                )
                .await?;
        }
        for (i, pt) in patients.iter().enumerate() {
            let nid = NationalId::synthetic(pt.born, pt.sex, u16::try_from(i).unwrap_or(0))
                .context("no synthetic national id for a demo birth date")?;
            let profile = PatientProfile {
                given: pt.given.to_string(),
                family: pt.family.to_string(),
                birth_date: pt.born,
                sex: pt.sex,
                national_id: nid,
            };
            people::create_patient(ctx, &tenant.id, &pid(tenant_name, pt.key), &profile).await?;
        }
        let staff_records: Vec<DemoStaffRecord<'_>> = staff
            .iter()
            .map(|s| DemoStaffRecord {
                id: pid(tenant_name, s.username),
                name: s.name,
                hpr: s.hpr,
            })
            .collect();
        let mut patient_records = Vec::new();
        for (i, pt) in patients.iter().enumerate() {
            patient_records.push(DemoPatientRecord {
                id: pid(tenant_name, pt.key),
                given: pt.given,
                family: pt.family,
                born: pt.born,
                sex: pt.sex,
                national_id: NationalId::synthetic(pt.born, pt.sex, u16::try_from(i).unwrap_or(0))
                    .context("no synthetic national id for a demo birth date")?,
                index: i,
            });
        }
        demo_records::seed(
            ctx,
            &tenant.id,
            tenant_name,
            &staff_records,
            &patient_records,
        )
        .await?;
        // Org units as FHIR Organizations, so CareTeams and PractitionerRoles can name them.
        let org_units = ctx.store.list_org_units(&tenant.id).await?;
        demo_records::write_as_system(
            ctx,
            &tenant.id,
            org_units
                .iter()
                .map(|u| {
                    let mut org =
                        json!({"resourceType": "Organization", "active": true, "name": u.name});
                    if let (Some(parent), Some(obj)) = (&u.parent, org.as_object_mut()) {
                        obj.insert(
                            "partOf".into(),
                            json!({"reference": format!("Organization/{parent}")}),
                        );
                    }
                    ("Organization".to_string(), u.id.to_string(), org)
                })
                .collect(),
        )
        .await?;
        if tenant_name == SORBY {
            // An inpatient stay: an EpisodeOfCare managed by the ward.
            let episodes = SORBY_PATIENTS
                .iter()
                .map(|pt| {
                    let patient = pid(SORBY, pt.key);
                    (
                        "EpisodeOfCare".to_string(),
                        PersonId::derived(&format!("{patient}/episode")).to_string(),
                        json!({
                            "resourceType": "EpisodeOfCare", "status": "active",
                            "patient": {"reference": format!("Patient/{patient}")},
                            "managingOrganization": {"reference": format!("Organization/{}", uid(SORBY, UNIT_SORBY))},
                            "period": {"start": fhir_date(since)}
                        }),
                    )
                })
                .collect();
            demo_records::write_as_system(ctx, &tenant.id, episodes).await?;
        }
    }

    let nordby = ctx
        .store
        .tenant_by_name(NORDBY)
        .await?
        .context("Nordby was just created")?;
    // Care relationships as CareTeams (what an EPJ integration would send).
    let mut teams = Vec::new();
    for (unit, keys, purpose) in UNIT_CARE {
        for key in *keys {
            teams.push(care_team(
                pid(NORDBY, key),
                &format!("Organization/{}", uid(NORDBY, unit)),
                purpose,
                (since, None),
                &[],
            ));
        }
    }
    for (staff, keys, purpose) in PERSONAL_CARE {
        for key in *keys {
            teams.push(care_team(
                pid(NORDBY, key),
                &format!("Practitioner/{}", pid(NORDBY, staff)),
                purpose,
                (since, None),
                &[],
            ));
        }
    }
    // A relationship that covers only some categories: medicine rounds for one patient.
    teams.push(care_team(
        pid(NORDBY, "p11"),
        &format!("Practitioner/{}", pid(NORDBY, "sykepleier.dahl")),
        "Medisinutdeling (kun målinger og legemidler)",
        (since, None),
        &["measurements", "medications"],
    ));
    // An ended relationship (p22) and one that has not begun (p23): both give no access.
    teams.push(care_team(
        pid(NORDBY, "p22"),
        &format!("Organization/{}", uid(NORDBY, UNIT_LEGE)),
        "Fastlege (avsluttet)",
        (since, Some(now - Duration::days(30))),
        &[],
    ));
    teams.push(care_team(
        pid(NORDBY, "p23"),
        &format!("Organization/{}", uid(NORDBY, UNIT_NORD)),
        "Hjemmesykepleie fra neste måned",
        (now + Duration::days(30), None),
        &[],
    ));
    demo_records::write_as_system(ctx, &nordby.id, teams).await?;

    // Patients' blocks (sperring) as Consents: Kjell Bakken (p02) blocks one nurse from his
    // whole record; Solveig Nygaard (p03) blocks her mental-health information from everyone.
    let haugen = pid(NORDBY, "sykepleier.haugen");
    demo_records::write_as_system(
        ctx,
        &nordby.id,
        vec![
            consent(
                pid(NORDBY, "p02"),
                json!({"type": "deny", "actor": [{"role": actor_role(), "reference": {"reference": format!("Practitioner/{haugen}")}}]}),
                since,
            ),
            consent(
                pid(NORDBY, "p03"),
                json!({"type": "deny", "securityLabel": [{"system": tillit_fhir::category::SYSTEM, "code": "mental-health"}]}),
                since,
            ),
        ],
    )
    .await?;
    // The tenant's individual decisions: a care assistant excluded from a neighbour's record
    // (his unit cares for her), and a temporary grant for a nurse covering another district.
    let rule = |kind, person: &str, patient: &str, purpose: &str, period| NewAccessRule {
        kind,
        party: AccessParty::Person(pid(NORDBY, person)),
        patient: pid(NORDBY, patient),
        categories: Vec::new(),
        purpose: purpose.to_string(),
        period,
        decided_by: Some(pid(NORDBY, "admin.nilsen")),
        source: "admin".into(),
    };
    for r in [
        rule(
            AccessKind::Exclusion,
            "helsefagarbeider.aas",
            "p12",
            "Nabo av pasienten (inhabil)",
            open,
        ),
        rule(
            AccessKind::Grant,
            "sykepleier.dahl",
            "p13",
            "Vikar for Hjemmetjenesten Nord",
            Period::new(since, Some(now + Duration::days(14)))?,
        ),
    ] {
        ctx.store.add_access_rule(&nordby.id, &r, now).await?;
    }
    // The secretary registers on behalf of the physician, without reading.
    ctx.store
        .add_delegation(
            &Delegation {
                id: PersonId::derived("demo/delegation/berg-lund").to_string(),
                tenant: nordby.id.clone(),
                delegate: pid(NORDBY, "sekretaer.berg"),
                on_behalf_of: pid(NORDBY, "lege.lund"),
                registration_only: true,
                period: open,
            },
            now,
        )
        .await?;
    // A note the physician has withheld from Astrid Haugland, with the reason.
    let astrid = pid(NORDBY, "p01");
    ctx.store
        .set_withheld(
            &nordby.id,
            "DocumentReference",
            &demo_records::withheld_note_id(&astrid),
            Some(&Withheld {
                resource_type: "DocumentReference".into(),
                id: demo_records::withheld_note_id(&astrid),
                patient: astrid.clone(),
                reason: "Unntatt innsyn (pasientjournalloven § 19 / pasient- og brukerrettighetsloven § 5-1 annet ledd): kan skade pasienten nå".into(),
                by: pid(NORDBY, "lege.lund"),
                at: now,
            }),
        )
        .await?;

    for (key, username) in PATIENT_LOGINS {
        people::create_account(
            ctx,
            &NewAccount {
                tenant: &nordby.id,
                person: &pid(NORDBY, key),
                username: Username::parse(username)?,
                password: demo_password(username),
                totp_secret: None,
            },
        )
        .await?;
    }
    for (username, name, patient, relationship, scope) in RELATIVES {
        let person = pid(NORDBY, username);
        people::create_relative(ctx, &nordby.id, &person, name).await?;
        ctx.store
            .link_relative(
                &nordby.id,
                &person,
                &pid(NORDBY, patient),
                relationship,
                now,
            )
            .await?;
        // The patient's consent for this relative, with its scope.
        let labels: Vec<_> = scope
            .iter()
            .map(|c| json!({"system": tillit_fhir::category::SYSTEM, "code": c}))
            .collect();
        demo_records::write_as_system(
            ctx,
            &nordby.id,
            vec![consent(
                pid(NORDBY, patient),
                json!({"type": "permit", "securityLabel": labels,
                       "actor": [{"role": actor_role(), "reference": {"reference": format!("RelatedPerson/{person}")}}]}),
                since,
            )],
        )
        .await?;
        people::create_account(
            ctx,
            &NewAccount {
                tenant: &nordby.id,
                person: &person,
                username: Username::parse(username)?,
                password: demo_password(username),
                totp_secret: None,
            },
        )
        .await?;
    }
    // The platform operator: a staff member of the operator tenant with the operator role.
    let ops = ctx.store.create_tenant(OPERATOR_TENANT, now).await?;
    ctx.store.set_operator_tenant(&ops.id).await?;
    let unit = uid(OPERATOR_TENANT, "Drift");
    ctx.store
        .create_org_unit(
            &NewOrgUnit {
                id: unit.clone(),
                tenant: ops.id.clone(),
                parent: None,
                name: "Drift".into(),
            },
            now,
        )
        .await?;
    let person = pid(OPERATOR_TENANT, OPERATOR);
    people::create_staff(ctx, &ops.id, &person, "Ola Olsen (drift)", None).await?;
    people::create_account(
        ctx,
        &NewAccount {
            tenant: &ops.id,
            person: &person,
            username: Username::parse(OPERATOR)?,
            password: demo_password(OPERATOR),
            totp_secret: Some(demo_totp(OPERATOR)),
        },
    )
    .await?;
    ctx.store
        .assign_role(
            &NewRoleAssignment {
                tenant: ops.id.clone(),
                person,
                role: Role::Operator,
                org_unit: unit,
                period: open,
            },
            now,
        )
        .await?;
    Ok(())
}

fn fhir_date(t: time::OffsetDateTime) -> String {
    t.date().to_string()
}

/// A CareTeam with one participant (`Organization/...` or `Practitioner/...`).
fn care_team(
    patient: PersonId,
    member: &str,
    purpose: &str,
    (from, to): (time::OffsetDateTime, Option<time::OffsetDateTime>),
    categories: &[&str],
) -> (String, String, serde_json::Value) {
    let mut period = json!({"start": fhir_date(from)});
    if let (Some(to), Some(obj)) = (to, period.as_object_mut()) {
        obj.insert(
            "end".into(),
            json!(tillit_server::fhir::service::format_instant(to)),
        );
    }
    let mut team = json!({
        "resourceType": "CareTeam", "status": "active", "name": purpose,
        "subject": {"reference": format!("Patient/{patient}")},
        "period": period,
        "participant": [{"member": {"reference": member}}]
    });
    if !categories.is_empty()
        && let Some(obj) = team.as_object_mut()
    {
        let ext: Vec<_> = categories
            .iter()
            .map(|c| json!({"url": tillit_server::fhir::access::CATEGORIES_EXT, "valueCode": c}))
            .collect();
        obj.insert("extension".into(), json!(ext));
    }
    (
        "CareTeam".to_string(),
        PersonId::derived(&format!("care-team/{patient}/{member}/{purpose}")).to_string(),
        team,
    )
}

fn actor_role() -> serde_json::Value {
    json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]})
}

/// A patient's Consent (patient-privacy) with one provision.
fn consent(
    patient: PersonId,
    provision: serde_json::Value,
    since: time::OffsetDateTime,
) -> (String, String, serde_json::Value) {
    let id = PersonId::derived(&format!("consent/{patient}/{provision}")).to_string();
    (
        "Consent".to_string(),
        id,
        json!({
            "resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": format!("Patient/{patient}")},
            "dateTime": fhir_date(since),
            "provision": provision
        }),
    )
}

#[derive(Serialize)]
pub struct Credentials {
    pub base_url: String,
    pub ca_cert: String,
    pub ca_fingerprint_sha256: String,
    pub users: Vec<DemoUser>,
    /// The README's short tour: a patient no clinician has a care relationship with, who can
    /// log in and see who opened their record.
    pub tour: Tour,
}

/// The patient of the README's tour (synthetic data).
#[derive(Serialize)]
pub struct Tour {
    pub patient_name: String,
    pub patient_national_id: String,
    pub patient_id: String,
    pub patient_username: String,
}

/// The tour's patient: p21, with no care relationship and a login of her own.
fn tour() -> Result<Tour> {
    let (i, pt) = NORDBY_PATIENTS
        .iter()
        .enumerate()
        .find(|(_, p)| p.key == "p21")
        .context("the demo has no tour patient")?;
    let nid = NationalId::synthetic(pt.born, pt.sex, u16::try_from(i).unwrap_or(0))
        .context("no synthetic national id for a demo birth date")?;
    Ok(Tour {
        patient_name: format!("{} {}", pt.given, pt.family),
        patient_national_id: nid.expose(),
        patient_id: pid(NORDBY, pt.key).to_string(),
        patient_username: "ragnhild.fjeld".into(),
    })
}

#[derive(Serialize)]
pub struct DemoUser {
    pub username: String,
    pub password: String,
    pub totp_secret: Option<String>,
    pub kind: &'static str,
    pub roles: Vec<&'static str>,
    pub tenant: String,
    /// The tenant's id (the audit log's endpoints are under `/audit/{tenant id}`).
    pub tenant_id: String,
    pub api_token: String,
    pub person_id: String,
    pub patients: Vec<String>,
    /// Patients in this staff member's care whose record they are nevertheless refused
    /// (the patient's block or the tenant's exclusion).
    pub refused_patients: Vec<String>,
    pub patient_id: Option<String>,
}

/// Lists every demo login with a fresh API token. Works on whatever the data dir holds, so
/// accounts added by an admin later are listed too (without a password: it is not known).
pub async fn credentials(
    ctx: &Ctx,
    base_url: &str,
    ca_cert: &Path,
    ca_fingerprint: &str,
) -> Result<Credentials> {
    let now = ctx.clock_now();
    let mut users = Vec::new();
    let mut seeded: BTreeMap<&str, ()> = BTreeMap::new();
    for s in NORDBY_STAFF.iter().chain(SORBY_STAFF) {
        seeded.insert(s.username, ());
    }
    seeded.insert(OPERATOR, ());
    for (_, u) in PATIENT_LOGINS {
        seeded.insert(u, ());
    }
    for (u, ..) in RELATIVES {
        seeded.insert(u, ());
    }
    for tenant in ctx.store.list_tenants().await? {
        for username in seeded.keys() {
            let Some(user) = ctx
                .store
                .user_by_username(&Username::parse(username)?)
                .await?
            else {
                continue;
            };
            if user.tenant != tenant.id {
                continue;
            }
            let token = random_token("tlt_");
            ctx.store
                .create_api_token(
                    &NewApiToken {
                        id: PersonId::random().to_string(),
                        tenant: tenant.id.clone(),
                        user: user.id.clone(),
                        name: "demo".into(),
                        hash: token_hash(token.expose()),
                        expires_at: now + Duration::days(7),
                    },
                    now,
                )
                .await?;
            let mut refused_patients = Vec::new();
            let (roles, patients, patient_id) = match user.kind {
                PersonKind::Staff => {
                    let assignments = ctx.store.role_assignments(&tenant.id, &user.person).await?;
                    let units: Vec<OrgUnitId> = assignments
                        .iter()
                        .filter(|a| a.period.contains(now))
                        .map(|a| a.org_unit.clone())
                        .collect();
                    let rules = ctx
                        .store
                        .access_rules_concerning(&tenant.id, &user.person, &units)
                        .await?;
                    let knowledge = tillit_authz::Knowledge::new(
                        user.person.as_str(),
                        "staff",
                        units.iter().map(|u| u.to_string()),
                        rules.into_iter().map(tillit_server::authz::to_engine),
                    );
                    let roles = active_roles(&assignments, now)
                        .into_iter()
                        .map(Role::code)
                        .collect();
                    // In care, and not blocked or excluded from the whole record.
                    let (ok, refused): (Vec<String>, Vec<String>) =
                        knowledge.patients_in_care(now).into_iter().partition(|p| {
                            let f = knowledge.facts(Some(p), "demographics", now);
                            !f.blocked && !f.excluded
                        });
                    refused_patients = refused;
                    (roles, ok, None)
                }
                PersonKind::Patient => (vec![], vec![], Some(user.person.to_string())),
                PersonKind::Relative => {
                    let linked = ctx
                        .store
                        .patients_of_relative(&tenant.id, &user.person)
                        .await?;
                    (vec![], vec![], linked.first().map(|p| p.to_string()))
                }
            };
            users.push(DemoUser {
                username: username.to_string(),
                password: demo_password(username),
                totp_secret: user.totp_secret.clone(),
                kind: user.kind.code(),
                roles,
                tenant: tenant.name.clone(),
                tenant_id: tenant.id.to_string(),
                api_token: token.expose().to_string(),
                person_id: user.person.to_string(),
                patients,
                refused_patients,
                patient_id,
            });
        }
    }
    Ok(Credentials {
        base_url: base_url.to_string(),
        ca_cert: ca_cert.display().to_string(),
        ca_fingerprint_sha256: ca_fingerprint.to_string(),
        users,
        tour: tour()?,
    })
}

pub fn print_summary(c: &Credentials, ca_created: bool, credentials_path: &Path) {
    println!();
    println!("Tillit demo is running at {}", c.base_url);
    println!(
        "TLS: local demo CA {} ({})\n     SHA-256 fingerprint {}",
        c.ca_cert,
        if ca_created { "created now" } else { "reused" },
        c.ca_fingerprint_sha256
    );
    println!(
        "     trust it in your browser, or: curl --cacert {} {}/healthz",
        c.ca_cert, c.base_url
    );
    println!();
    println!(
        "{:<22} {:<18} {:<16} {:<34} TOTP secret",
        "username", "password", "tenant", "roles / kind"
    );
    for u in &c.users {
        let what = if u.roles.is_empty() {
            u.kind.to_string()
        } else {
            u.roles.join(",")
        };
        println!(
            "{:<22} {:<18} {:<16} {:<34} {}",
            u.username,
            u.password,
            u.tenant,
            what,
            u.totp_secret.as_deref().unwrap_or("-")
        );
    }
    println!();
    println!(
        "Tour (README): log in as lege.lund, find {} by national id {} under My patients,",
        c.tour.patient_name, c.tour.patient_national_id
    );
    println!(
        "      open emergency access; then log in as {} and open \"Who has looked\".",
        c.tour.patient_username
    );
    println!();
    println!("Staff log in with a TOTP code: add the secret to an authenticator app, or run");
    println!("  oathtool --totp -b SECRET");
    println!(
        "All logins, API tokens and patient lists: {}",
        credentials_path.display()
    );
    println!("Stop with Ctrl-C.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_secrets_are_stable_and_well_formed() {
        assert_eq!(demo_password("x"), demo_password("x"));
        assert_ne!(demo_password("x"), demo_password("y"));
        let t = demo_totp("lege.lund");
        assert_eq!(t.len(), 32);
        assert!(tillit_crypto::TotpSecret::from_base32(&t, "Tillit", "x").is_ok());
    }

    #[test]
    fn demo_patients_have_valid_synthetic_national_ids() {
        for (i, pt) in NORDBY_PATIENTS.iter().chain(SORBY_PATIENTS).enumerate() {
            let id = NationalId::synthetic(pt.born, pt.sex, u16::try_from(i).unwrap_or(0));
            let id = id.map(|id| NationalId::parse(&id.expose()));
            assert!(
                matches!(id, Some(Ok(ref n)) if n.is_synthetic()),
                "{}",
                pt.key
            );
        }
        assert!(NORDBY_PATIENTS.len() >= 20);
    }
}
