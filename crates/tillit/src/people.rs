//! Creating people and accounts; shared by the admin commands and the demo.

use crate::Ctx;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tillit_core::national_id::{NationalId, Sex};
use tillit_core::{PersonId, PersonKind, TenantId, Username};
use tillit_crypto::SecretString;
use tillit_store::{NewPerson, User};
use time::Date;

/// A patient's demographics: sealed under the patient's key, never stored in clear.
pub struct PatientProfile {
    pub given: String,
    pub family: String,
    pub birth_date: Date,
    pub sex: Sex,
    pub national_id: NationalId,
}

#[derive(Serialize, Deserialize)]
struct SealedProfile {
    given: String,
    family: String,
    birth_date: String,
    sex: String,
    national_id: String,
}

pub const PROFILE_CONTEXT: &str = "person-profile/v1";

pub async fn create_staff(
    ctx: &Ctx,
    tenant: &TenantId,
    id: &PersonId,
    name: &str,
    hpr: Option<&str>,
) -> Result<()> {
    tillit_server::admin::create_staff(&*ctx.store, tenant, id, name, hpr, ctx.clock_now()).await?;
    Ok(())
}

pub async fn create_relative(
    ctx: &Ctx,
    tenant: &TenantId,
    id: &PersonId,
    name: &str,
) -> Result<()> {
    ctx.store
        .create_person(
            &NewPerson {
                id: id.clone(),
                tenant: tenant.clone(),
                kind: PersonKind::Relative,
                display_name: Some(name.to_string()),
                professional_id: None,
                sealed_profile: None,
                national_id_index: None,
            },
            ctx.clock_now(),
        )
        .await?;
    Ok(())
}

pub async fn create_patient(
    ctx: &Ctx,
    tenant: &TenantId,
    id: &PersonId,
    p: &PatientProfile,
) -> Result<()> {
    let profile = SealedProfile {
        given: p.given.clone(),
        family: p.family.clone(),
        birth_date: p.birth_date.to_string(),
        sex: match p.sex {
            Sex::Female => "female".into(),
            Sex::Male => "male".into(),
        },
        national_id: p.national_id.expose(),
    };
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&profile)?);
    let sealed =
        ctx.keyring
            .seal_for_patient(tenant.as_str(), id.as_str(), PROFILE_CONTEXT, &plain)?;
    let index = ctx
        .keyring
        .blind_index(tenant.as_str(), "national-id", &p.national_id.expose())?;
    ctx.store
        .create_person(
            &NewPerson {
                id: id.clone(),
                tenant: tenant.clone(),
                kind: PersonKind::Patient,
                display_name: None,
                professional_id: None,
                sealed_profile: Some(sealed),
                national_id_index: Some(index.to_vec()),
            },
            ctx.clock_now(),
        )
        .await
        .context("a patient with this national id may already exist")?;
    Ok(())
}

pub struct NewAccount<'a> {
    pub tenant: &'a TenantId,
    pub person: &'a PersonId,
    pub username: Username,
    pub password: String,
    pub totp_secret: Option<String>,
}

pub async fn create_account(ctx: &Ctx, a: &NewAccount<'_>) -> Result<User> {
    tillit_server::admin::create_account(
        &*ctx.store,
        ctx.hasher.clone(),
        tillit_server::admin::NewAccount {
            tenant: a.tenant,
            person: a.person,
            username: a.username.clone(),
            password: SecretString::new(a.password.clone()),
            totp_secret: a.totp_secret.clone(),
        },
        ctx.clock_now(),
    )
    .await?
    .with_context(|| format!("the username '{}' is taken", a.username))
}
