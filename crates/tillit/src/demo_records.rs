//! The demo's records: FHIR resources for every demo patient and staff member, written through
//! the same service as the API (validated, categorised, sealed, indexed). Deterministic except
//! for timestamps, which follow the day the demo was seeded.

use crate::Ctx;
use anyhow::Result;
use base64::Engine;
use serde_json::{Value, json};
use tillit_core::national_id::{NationalId, Sex};
use tillit_core::{PersonId, TenantId};
use tillit_server::authz::{Action, Actor};
use tillit_server::fhir::service::Fhir;
use tillit_server::{AppState, Config};
use time::{Date, Duration, OffsetDateTime};

pub struct DemoPatientRecord<'a> {
    pub id: PersonId,
    pub given: &'a str,
    pub family: &'a str,
    pub born: Date,
    pub sex: Sex,
    pub national_id: NationalId,
    pub index: usize,
}

pub struct DemoStaffRecord<'a> {
    pub id: PersonId,
    pub name: &'a str,
    pub hpr: &'a str,
}

const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const ATC: &str = "http://www.whocc.no/atc";
const LOINC: &str = "http://loinc.org";
const OBS_CAT: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// (ICD-10 code, display) by patient index; F and A60 codes land in sensitive categories.
const CONDITIONS: &[(&str, &str)] = &[
    ("I10", "Essensiell hypertensjon"),
    ("E11.9", "Diabetes mellitus type 2 uten komplikasjoner"),
    ("F32.1", "Moderat depressiv episode"),
    ("J44.9", "Kronisk obstruktiv lungesykdom"),
    ("I50.9", "Hjertesvikt"),
    ("F03", "Demens"),
    ("M17.9", "Kneartrose"),
    ("N18.3", "Kronisk nyresykdom, stadium 3"),
    ("I48.9", "Atrieflimmer"),
    ("A60.0", "Genital herpes"),
];

const MEDICATIONS: &[(&str, &str)] = &[
    ("C07AB02", "Metoprolol"),
    ("A10BA02", "Metformin"),
    ("N06AB10", "Escitalopram"),
    ("R03AL03", "Vilanterol og umeklidinium"),
    ("C03CA01", "Furosemid"),
    ("N06DA02", "Donepezil"),
    ("N02BE01", "Paracetamol"),
    ("C09AA05", "Ramipril"),
    ("B01AF02", "Apiksaban"),
    ("J05AB11", "Valaciclovir"),
];

fn instant(t: OffsetDateTime) -> String {
    tillit_server::fhir::service::format_instant(t)
}

fn patient_resources(
    p: &DemoPatientRecord<'_>,
    now: OffsetDateTime,
    author: &PersonId,
) -> Vec<(String, String, Value)> {
    let pid = p.id.to_string();
    let subject = json!({"reference": format!("Patient/{pid}")});
    let mut out = vec![(
        "Patient".to_string(),
        pid.clone(),
        json!({
            "resourceType": "Patient",
            "identifier": [{"system": tillit_core::national_id::SYSTEM, "value": p.national_id.expose()}],
            "active": true,
            "name": [{"use": "official", "family": p.family, "given": [p.given]}],
            "gender": if p.sex == Sex::Female { "female" } else { "male" },
            "birthDate": p.born.to_string(),
            "address": [{"use": "home", "city": "Nordby", "country": "NO"}]
        }),
    )];
    let i = p.index;
    let mut n = 0;
    let mut push = |rt: &str, v: Value, out: &mut Vec<(String, String, Value)>| {
        n += 1;
        out.push((
            rt.to_string(),
            PersonId::derived(&format!("{pid}/{rt}/{n}")).to_string(),
            v,
        ));
    };
    // Remote monitoring: heart rate and blood pressure weekly for eight weeks.
    for week in 0..8i64 {
        let when = instant(now - Duration::weeks(8 - week) + Duration::hours(8));
        let hr = 62 + ((i as i64 * 7 + week * 3) % 25);
        let sys = 118 + ((i as i64 * 11 + week * 5) % 40);
        let dia = 70 + ((i as i64 * 5 + week * 3) % 20);
        push(
            "Observation",
            json!({
                "resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}],
                "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}], "text": "Puls"},
                "subject": subject, "effectiveDateTime": when,
                "valueQuantity": {"value": hr, "unit": "slag/min", "system": "http://unitsofmeasure.org", "code": "/min"},
                "referenceRange": [{"low": {"value": 50, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}, "high": {"value": 100, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}]
            }),
            &mut out,
        );
        push(
            "Observation",
            json!({
                "resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": OBS_CAT, "code": "vital-signs"}]}],
                "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}], "text": "Blodtrykk"},
                "subject": subject, "effectiveDateTime": when,
                "component": [
                    {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}], "text": "Systolisk"}, "valueQuantity": {"value": sys, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}, "referenceRange": [{"low": {"value": 90, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}, "high": {"value": 140, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]},
                    {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}], "text": "Diastolisk"}, "valueQuantity": {"value": dia, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}, "referenceRange": [{"low": {"value": 60, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}, "high": {"value": 90, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]}
                ]
            }),
            &mut out,
        );
    }
    let hba1c = 42 + (i as i64 * 3) % 20;
    push(
        "Observation",
        json!({
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": "4548-4", "display": "Hemoglobin A1c"}], "text": "HbA1c"},
            "subject": subject, "effectiveDateTime": instant(now - Duration::days(20)),
            "valueQuantity": {"value": hba1c, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"},
            "referenceRange": [{"low": {"value": 20, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"}, "high": {"value": 42, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"}}]
        }),
        &mut out,
    );
    let (code, display) = CONDITIONS
        .get(i % CONDITIONS.len())
        .copied()
        .unwrap_or(("I10", "Hypertensjon"));
    push(
        "Condition",
        json!({
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
            "code": {"coding": [{"system": ICD10, "code": code, "display": display}], "text": display},
            "subject": subject, "recordedDate": (now - Duration::days(300)).date().to_string()
        }),
        &mut out,
    );
    let (atc, med) = MEDICATIONS
        .get(i % MEDICATIONS.len())
        .copied()
        .unwrap_or(("N02BE01", "Paracetamol"));
    push(
        "MedicationStatement",
        json!({
            "resourceType": "MedicationStatement", "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc, "display": med}], "text": med},
            "subject": subject, "effectivePeriod": {"start": (now - Duration::days(200)).date().to_string()},
            "dosage": [{"text": "1 tablett morgen"}]
        }),
        &mut out,
    );
    push(
        "Encounter",
        json!({
            "resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH", "display": "home health"},
            "subject": subject, "period": {"start": instant(now - Duration::days(7)), "end": instant(now - Duration::days(7) + Duration::minutes(45))}
        }),
        &mut out,
    );
    let note = format!(
        "Hjemmebesøk. {} {} er i god form i dag. Målinger tatt, medisiner gitt.",
        p.given, p.family
    );
    push(
        "DocumentReference",
        json!({
            "resourceType": "DocumentReference", "status": "current", "docStatus": "final",
            "type": {"coding": [{"system": LOINC, "code": "34746-8", "display": "Nurse Note"}], "text": "Sykepleiernotat"},
            "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "code": "clinical-note"}]}],
            "subject": subject, "date": instant(now - Duration::days(7)),
            "author": [{"reference": format!("Practitioner/{author}")}],
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": base64::engine::general_purpose::STANDARD.encode(note)}}]
        }),
        &mut out,
    );
    if i == 0 {
        // A note the physician has withheld from the patient under the law (the demo
        // withholds it after seeding; see `withheld_note_id`).
        let text = "Vurdering: pasienten bør ikke lese denne notatet nå; tas opp i samtale.";
        out.push((
            "DocumentReference".to_string(),
            withheld_note_id(&p.id),
            json!({
                "resourceType": "DocumentReference", "status": "current", "docStatus": "preliminary",
                "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}], "text": "Legenotat"},
                "subject": subject, "date": instant(now - Duration::days(2)),
                "author": [{"reference": format!("Practitioner/{author}")}],
                "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": base64::engine::general_purpose::STANDARD.encode(text)}}]
            }),
        ));
    }
    push(
        "Appointment",
        json!({
            "resourceType": "Appointment", "status": "booked", "description": "Hjemmebesøk",
            "start": instant(now + Duration::days(3) + Duration::hours(10)), "end": instant(now + Duration::days(3) + Duration::hours(11)),
            "participant": [{"actor": {"reference": format!("Patient/{pid}")}, "status": "accepted"}]
        }),
        &mut out,
    );
    out
}

/// The id of the physician's note that the demo withholds from its first patient.
pub fn withheld_note_id(patient: &PersonId) -> String {
    PersonId::derived(&format!("{patient}/withheld-note")).to_string()
}

/// Writes the demo's records for one tenant: an Organization, Practitioners, and each
/// patient's Patient and clinical resources (one transaction per patient).
pub async fn seed(
    ctx: &Ctx,
    tenant: &TenantId,
    org_name: &str,
    staff: &[DemoStaffRecord<'_>],
    patients: &[DemoPatientRecord<'_>],
) -> Result<()> {
    let state = system_state(ctx);
    let fhir = Fhir::new(
        &state,
        Actor::System {
            tenant,
            purpose: "demo seed",
        },
    );
    let now = ctx.clock_now();
    let mut directory = vec![(
        "Organization".to_string(),
        PersonId::derived(&format!("{tenant}/organization")).to_string(),
        json!({"resourceType": "Organization", "active": true, "name": org_name}),
    )];
    for s in staff {
        let mut pr =
            json!({"resourceType": "Practitioner", "active": true, "name": [{"text": s.name}]});
        if !s.hpr.is_empty()
            && let Some(obj) = pr.as_object_mut()
        {
            obj.insert(
                "identifier".into(),
                json!([{"system": "urn:oid:2.16.578.1.12.4.1.4.4", "value": s.hpr}]),
            );
        }
        directory.push(("Practitioner".to_string(), s.id.to_string(), pr));
    }
    write(&fhir, directory).await?;
    let author = staff
        .first()
        .map(|s| s.id.clone())
        .unwrap_or_else(|| PersonId::derived("nobody"));
    for p in patients {
        write(&fhir, patient_resources(p, now, &author)).await?;
    }
    Ok(())
}

fn system_state(ctx: &Ctx) -> AppState {
    let config = Config {
        data_dir: ctx.data_dir.clone(),
        ..Config::default()
    };
    AppState::new(
        ctx.store.clone(),
        ctx.clock.clone(),
        ctx.hasher.clone(),
        ctx.keyring.clone(),
        config,
    )
}

/// Writes resources as Tillit itself (the demo's record system), in one transaction.
pub async fn write_as_system(
    ctx: &Ctx,
    tenant: &TenantId,
    resources: Vec<(String, String, Value)>,
) -> Result<()> {
    let state = system_state(ctx);
    let fhir = Fhir::new(
        &state,
        Actor::System {
            tenant,
            purpose: "demo seed",
        },
    );
    write(&fhir, resources).await
}

async fn write(fhir: &Fhir<'_>, resources: Vec<(String, String, Value)>) -> Result<()> {
    let mut writes = Vec::new();
    for (rt, id, value) in resources {
        let (w, _) = fhir
            .prepare(&rt, &id, 1, None, value, Action::Create)
            .await
            .map_err(|e| anyhow::anyhow!("demo {rt}: {}", e.message()))?;
        writes.push(w);
    }
    fhir.state
        .store
        .write_resources(fhir.tenant(), writes)
        .await?;
    Ok(())
}
