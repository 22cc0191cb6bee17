//! `tillit admin ...`: what a tenant admin does from the command line today.

use crate::Ctx;
use crate::people::{self, NewAccount, PatientProfile};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::Read;
use tillit_core::AccessKind;
use tillit_core::national_id::NationalId;
use tillit_core::{OrgUnitId, Period, PersonId, PersonKind, Role, TenantId, Username};
use tillit_crypto::{TotpSecret, random_token, token_hash, totp_qr_svg};
use tillit_store::{
    AccessParty, CareParty, Delegation, NewAccessRule, NewApiToken, NewCareRelationship,
    NewOrgUnit, NewRoleAssignment, NewSecurityEvent, SecurityEventKind, SupportGrant, Tenant,
};
use time::{Duration, OffsetDateTime};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Tenants (customers; each is a data controller with its own keys).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Org units: a tree inside a tenant.
    Unit {
        #[command(subcommand)]
        command: UnitCommand,
    },
    /// Staff, patients and relatives.
    Person {
        #[command(subcommand)]
        command: PersonCommand,
    },
    /// Login accounts for people.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Role assignments: person × role × org unit × validity period.
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// Care relationships: who has a need to know which patient, and for how long.
    Care {
        #[command(subcommand)]
        command: CareCommand,
    },
    /// Every access rule of a patient, and the tenant's individual grants and exclusions.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Time-limited support access for platform operators, granted by the tenant.
    Support {
        #[command(subcommand)]
        command: SupportCommand,
    },
    /// Staff acting on behalf of a colleague.
    Delegate {
        #[command(subcommand)]
        command: DelegateCommand,
    },
    /// API tokens for the `Authorization: Bearer` header.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The tenant's category rules (tried before Tillit's defaults).
    Categories {
        #[command(subcommand)]
        command: CategoriesCommand,
    },
    /// Security events (logins, lockouts, logouts, token use), newest first, as JSON lines.
    Events {
        /// Only this tenant's events (name or id); all when absent.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Subcommand)]
pub enum CategoriesCommand {
    /// Replaces the tenant's rules with those in FILE: a JSON array of
    /// {"resource_type"?, "system"?, "code_prefix"?, "category"}.
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Prints the tenant's rules, then the defaults, in the order they are tried.
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct CategoryRuleFile {
    resource_type: Option<String>,
    system: Option<String>,
    code_prefix: Option<String>,
    category: String,
}

#[derive(Subcommand)]
pub enum TenantCommand {
    Create {
        #[arg(long)]
        name: String,
        /// The platform's own operator tenant (at most one): its staff are the operators,
        /// who see no tenant's data without a support grant.
        #[arg(long)]
        operator: bool,
    },
    List,
    /// Shows the tenant's access settings, changing those given.
    Settings {
        #[arg(long)]
        tenant: String,
        /// How long an emergency access window lasts (1 to 1440 minutes; default 240).
        #[arg(long)]
        emergency_minutes: Option<u32>,
        /// Whether emergency access overrides a patient's block (default true; the
        /// patient sees every emergency access either way).
        #[arg(long)]
        emergency_overrides_block: Option<bool>,
    },
    /// Shows the categories the tenant must keep (never erased on a patient's request),
    /// replacing them when --keep is given.
    Retention {
        #[arg(long)]
        tenant: String,
        /// Comma-separated category codes, e.g. clinical-notes,lab-results,medications
        /// (see `tillit admin categories list`); "" keeps none.
        #[arg(long)]
        keep: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AccessCommand {
    /// Grants a staff member access to a patient (beyond their role's relationships).
    Grant {
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Excludes a staff member from a patient: beats every relationship and grant.
    Exclude {
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Lists every rule about a patient: relationships, blocks, grants, exclusions, consents.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        patient: String,
    },
    /// Ends a rule made here now (rules from FHIR resources end with their resource).
    End {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(clap::Args)]
pub struct RuleArgs {
    #[arg(long)]
    tenant: String,
    /// The staff member (person id).
    #[arg(long)]
    person: String,
    #[arg(long)]
    patient: String,
    /// Why (shown to security officers).
    #[arg(long)]
    reason: String,
    /// Only these categories (comma-separated Tillit codes); all when absent.
    #[arg(long, value_delimiter = ',')]
    categories: Vec<String>,
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
}

#[derive(Subcommand)]
pub enum SupportCommand {
    /// Lets a platform operator read the tenant's data for a limited time (read only).
    Grant {
        #[arg(long)]
        tenant: String,
        /// The operator's username.
        #[arg(long)]
        operator: String,
        /// How long, e.g. 30m, 2h (at most 24h).
        #[arg(long, default_value = "2h")]
        ttl: String,
        /// Why (a support ticket); shown to the tenant's admins and security officers.
        #[arg(long)]
        reason: String,
    },
    /// Every support grant of the tenant, with its state.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Ends a support grant now.
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum DelegateCommand {
    /// Lets DELEGATE act on behalf of a colleague (their relationships and roles apply).
    Add {
        #[arg(long)]
        tenant: String,
        /// Who acts (person id).
        #[arg(long)]
        delegate: String,
        /// On whose behalf (person id).
        #[arg(long)]
        on_behalf_of: String,
        /// Registration (writing) only, without reading.
        #[arg(long)]
        registration_only: bool,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        delegate: String,
    },
}

#[derive(Subcommand)]
pub enum UnitCommand {
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Parent unit (name or id); a root unit without it.
        #[arg(long)]
        parent: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
pub enum PersonCommand {
    Create {
        #[arg(long)]
        tenant: String,
        /// staff, patient or relative
        #[arg(long)]
        kind: String,
        /// Full name ("Given Family"); for patients the last word is the family name.
        #[arg(long)]
        name: String,
        /// Patients: national id (11 digits, checked).
        #[arg(long)]
        national_id: Option<String>,
        /// Staff: HPR number.
        #[arg(long)]
        hpr: Option<String>,
        /// Relatives: the patient (id) they are a relative of, and how.
        #[arg(long)]
        relative_of: Option<String>,
        #[arg(long, default_value = "pårørende")]
        relationship: String,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Creates a login for a person. The password is read from stdin with --password-stdin,
    /// otherwise generated and printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        person: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
        /// Create the TOTP secret now and print its otpauth URI (staff can also enrol at
        /// first login).
        #[arg(long)]
        with_totp: bool,
        /// Also write the enrolment QR code as SVG to this file.
        #[arg(long, value_name = "FILE")]
        qr_svg: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum RoleCommand {
    Assign {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        person: String,
        /// physician, nurse, care_assistant, secretary, security_officer, tenant_admin
        #[arg(long)]
        role: String,
        /// Org unit (name or id).
        #[arg(long)]
        unit: String,
        /// Start (YYYY-MM-DD or RFC 3339); now if absent.
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive (YYYY-MM-DD or RFC 3339); open-ended if absent.
        #[arg(long)]
        to: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        person: String,
    },
}

#[derive(Subcommand)]
pub enum CareCommand {
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        patient: String,
        /// A staff member (person id) ...
        #[arg(long, conflicts_with = "unit", required_unless_present = "unit")]
        staff: Option<String>,
        /// ... or a whole org unit (name or id).
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        patient: String,
    },
    /// Ends a care relationship now: access based on it stops with the next request.
    End {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Creates a token for a user; it is shown once and stored only as a hash.
    Create {
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. 30m, 8h, 7d.
        #[arg(long, default_value = "8h")]
        ttl: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    List {
        #[arg(long)]
        user: String,
    },
    Revoke {
        #[arg(long)]
        user: String,
        #[arg(long)]
        id: String,
    },
}

/// Parses "30s", "15m", "8h", "7d".
pub fn parse_ttl(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .with_context(|| format!("invalid --ttl '{s}': expected a number and a unit, e.g. 8h"))?;
    let d = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" | "" => Duration::hours(n),
        "d" => Duration::days(n),
        other => bail!("invalid --ttl unit '{other}': use s, m, h or d"),
    };
    if n <= 0 || d > Duration::days(366) {
        bail!("invalid --ttl '{s}': must be positive and at most 366d");
    }
    Ok(d)
}

fn parse_time(s: &str) -> Result<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .with_context(|| format!("invalid date '{s}': use YYYY-MM-DD or RFC 3339"))?;
    Ok(d.midnight().assume_utc())
}

fn period(ctx: &Ctx, from: Option<&str>, to: Option<&str>) -> Result<Period> {
    let start = from
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(|| ctx.clock_now());
    let end = to.map(parse_time).transpose()?;
    Ok(Period::new(start, end)?)
}

pub async fn tenant(ctx: &Ctx, name_or_id: &str) -> Result<Tenant> {
    if let Some(t) = ctx.store.tenant_by_name(name_or_id).await? {
        return Ok(t);
    }
    if let Ok(id) = TenantId::parse(name_or_id)
        && let Some(t) = ctx.store.tenant(&id).await?
    {
        return Ok(t);
    }
    bail!("no tenant named '{name_or_id}'")
}

async fn unit(ctx: &Ctx, tenant: &Tenant, name_or_id: &str) -> Result<OrgUnitId> {
    let units = ctx.store.list_org_units(&tenant.id).await?;
    let found: Vec<_> = units
        .iter()
        .filter(|u| u.name == name_or_id || u.id.as_str() == name_or_id)
        .collect();
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => bail!("no org unit '{name_or_id}' in {}", tenant.name),
        _ => bail!("more than one org unit is named '{name_or_id}'; use its id"),
    }
}

async fn person(
    ctx: &Ctx,
    tenant: &Tenant,
    id: &str,
    kind: Option<PersonKind>,
) -> Result<PersonId> {
    let pid = PersonId::parse(id)?;
    let p = ctx.store.person(&tenant.id, &pid).await?;
    match p {
        Some(p) if kind.is_none_or(|k| k == p.kind) => Ok(pid),
        Some(p) => bail!(
            "person {id} is {}, not {}",
            p.kind,
            kind.map_or("", PersonKind::code)
        ),
        None => bail!("no person {id} in {}", tenant.name),
    }
}

async fn user_by_name(ctx: &Ctx, username: &str) -> Result<tillit_store::User> {
    ctx.store
        .user_by_username(&Username::parse(username)?)
        .await?
        .with_context(|| format!("no user '{username}'"))
}

/// Admin actions on accounts are security events too (no IP: they come from the console).
/// A tenant-level change made from the CLI, as a security event.
async fn tenant_event(
    ctx: &Ctx,
    tenant: &Tenant,
    kind: SecurityEventKind,
    detail: String,
) -> Result<()> {
    cli_event(ctx, &tenant.id, kind, true, detail, "tillit admin (CLI)").await
}

/// A tenant-level event of a console command (no account, no IP), into the tenant's audit
/// log as well as the security events.
pub async fn cli_event(
    ctx: &Ctx,
    tenant: &tillit_core::TenantId,
    kind: SecurityEventKind,
    ok: bool,
    detail: String,
    agent: &str,
) -> Result<()> {
    let ev = NewSecurityEvent {
        at: ctx.clock_now(),
        tenant: Some(tenant.clone()),
        user: None,
        username: None,
        kind,
        outcome_ok: ok,
        detail,
        ip: None,
        user_agent: Some(agent.into()),
    };
    ctx.store
        .append_audit(tillit_server::audit::security_batch(ev, None, None, None))
        .await?;
    Ok(())
}

async fn add_rule(ctx: &Ctx, kind: AccessKind, a: RuleArgs) -> Result<()> {
    let t = tenant(ctx, &a.tenant).await?;
    let patient = person(ctx, &t, &a.patient, Some(PersonKind::Patient)).await?;
    let staff = person(ctx, &t, &a.person, Some(PersonKind::Staff)).await?;
    for c in &a.categories {
        if tillit_fhir::category::Category::parse(c).is_none() {
            bail!("unknown category {c:?} (see docs/design/categories.md)");
        }
    }
    if a.reason.trim().is_empty() {
        bail!("give --reason");
    }
    let rule = NewAccessRule {
        kind,
        party: AccessParty::Person(staff.clone()),
        patient: patient.clone(),
        categories: a.categories,
        purpose: a.reason.trim().to_string(),
        period: period(ctx, a.from.as_deref(), a.to.as_deref())?,
        decided_by: None,
        source: "admin".into(),
    };
    let made = ctx
        .store
        .add_access_rule(&t.id, &rule, ctx.clock_now())
        .await?;
    tenant_event(
        ctx,
        &t,
        SecurityEventKind::AccessChanged,
        format!(
            "{} {} of Practitioner/{staff} to Patient/{patient}",
            kind.code(),
            made.id
        ),
    )
    .await?;
    println!("{}", made.id);
    Ok(())
}

async fn admin_event(
    ctx: &Ctx,
    kind: SecurityEventKind,
    user: &tillit_store::User,
    detail: String,
) -> Result<()> {
    let ev = NewSecurityEvent {
        at: ctx.clock_now(),
        tenant: Some(user.tenant.clone()),
        user: Some(user.id.clone()),
        username: Some(user.username.to_string()),
        kind,
        outcome_ok: true,
        detail,
        ip: None,
        user_agent: Some("tillit admin (CLI)".into()),
    };
    ctx.store
        .append_audit(tillit_server::audit::security_batch(
            ev,
            Some(user.person.as_str()),
            None,
            None,
        ))
        .await?;
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: AdminCommand) -> Result<()> {
    let now = ctx.clock_now();
    match cmd {
        AdminCommand::Tenant {
            command: TenantCommand::Create { name, operator },
        } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 200 {
                bail!("invalid --name: must be 1 to 200 characters");
            }
            if operator && ctx.store.operator_tenant().await?.is_some() {
                bail!("there is already an operator tenant");
            }
            let t = ctx.store.create_tenant(name, now).await?;
            if operator {
                ctx.store.set_operator_tenant(&t.id).await?;
            }
            println!("{}", t.id);
        }
        AdminCommand::Tenant {
            command: TenantCommand::List,
        } => {
            for t in ctx.store.list_tenants().await? {
                println!("{}\t{}", t.id, t.name);
            }
        }
        AdminCommand::Unit {
            command:
                UnitCommand::Create {
                    tenant: t,
                    name,
                    parent,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let parent = match parent {
                Some(p) => Some(unit(ctx, &t, &p).await?),
                None => None,
            };
            let u = ctx
                .store
                .create_org_unit(
                    &NewOrgUnit {
                        id: OrgUnitId::random(),
                        tenant: t.id.clone(),
                        parent,
                        name: name.trim().to_string(),
                    },
                    now,
                )
                .await?;
            println!("{}", u.id);
        }
        AdminCommand::Unit {
            command: UnitCommand::List { tenant: t },
        } => {
            let t = tenant(ctx, &t).await?;
            let units = ctx.store.list_org_units(&t.id).await?;
            fn print(units: &[tillit_store::OrgUnit], parent: Option<&OrgUnitId>, depth: usize) {
                for u in units.iter().filter(|u| u.parent.as_ref() == parent) {
                    println!("{}{}\t{}", "  ".repeat(depth), u.name, u.id);
                    print(units, Some(&u.id), depth + 1);
                }
            }
            print(&units, None, 0);
        }
        AdminCommand::Person {
            command:
                PersonCommand::Create {
                    tenant: t,
                    kind,
                    name,
                    national_id,
                    hpr,
                    relative_of,
                    relationship,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let kind = PersonKind::parse(&kind)?;
            let id = PersonId::random();
            let name = name.trim();
            if name.is_empty() {
                bail!("invalid --name: must not be empty");
            }
            match kind {
                PersonKind::Staff => {
                    people::create_staff(ctx, &t.id, &id, name, hpr.as_deref()).await?
                }
                PersonKind::Relative => {
                    let patient = match &relative_of {
                        Some(p) => person(ctx, &t, p, Some(PersonKind::Patient)).await?,
                        None => bail!("a relative needs --relative-of PATIENT_ID"),
                    };
                    people::create_relative(ctx, &t.id, &id, name).await?;
                    ctx.store
                        .link_relative(&t.id, &id, &patient, &relationship, now)
                        .await?;
                }
                PersonKind::Patient => {
                    let nid = NationalId::parse(
                        national_id
                            .as_deref()
                            .context("a patient needs --national-id")?,
                    )?;
                    let (given, family) = name.rsplit_once(' ').unwrap_or((name, ""));
                    let birth = birth_date(&nid)?;
                    let profile = PatientProfile {
                        given: given.to_string(),
                        family: family.to_string(),
                        birth_date: birth,
                        sex: nid.sex(),
                        national_id: nid,
                    };
                    people::create_patient(ctx, &t.id, &id, &profile).await?;
                }
            }
            println!("{id}");
        }
        AdminCommand::Person {
            command: PersonCommand::List { tenant: t, kind },
        } => {
            let t = tenant(ctx, &t).await?;
            let kind = kind.map(|k| PersonKind::parse(&k)).transpose()?;
            for p in ctx.store.list_persons(&t.id, kind).await? {
                // Patient names are sealed; listing shows ids only.
                println!(
                    "{}\t{}\t{}",
                    p.id,
                    p.kind,
                    p.display_name.as_deref().unwrap_or("(sealed)")
                );
            }
        }
        AdminCommand::User {
            command:
                UserCommand::Create {
                    tenant: t,
                    person: p,
                    username,
                    password_stdin,
                    with_totp,
                    qr_svg,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let pid = person(ctx, &t, &p, None).await?;
            let username = Username::parse(&username)?;
            let (password, generated): (String, bool) = if password_stdin {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the password from stdin")?;
                (s.trim_end_matches(['\r', '\n']).to_string(), false)
            } else {
                (random_token("").expose().chars().take(20).collect(), true)
            };
            let totp = if with_totp || qr_svg.is_some() {
                Some(TotpSecret::generate("Tillit", username.as_str())?)
            } else {
                None
            };
            let user = people::create_account(
                ctx,
                &NewAccount {
                    tenant: &t.id,
                    person: &pid,
                    username: username.clone(),
                    password: password.clone(),
                    totp_secret: totp.as_ref().map(|s| s.base32().expose().to_string()),
                },
            )
            .await?;
            println!("user {} created for {}", user.username, user.kind);
            if generated {
                // Shown once; only its Argon2id hash is stored.
                println!("password: {password}");
            }
            if let Some(totp) = &totp {
                println!("otpauth URI: {}", totp.otpauth_uri());
                if let Some(path) = qr_svg {
                    std::fs::write(&path, totp_qr_svg(&totp.otpauth_uri())?)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("QR code written to {}", path.display());
                }
            } else if user.kind.requires_totp() {
                println!("TOTP: the user enrols at first login (the page shows a QR code)");
            }
        }
        AdminCommand::Role {
            command:
                RoleCommand::Assign {
                    tenant: t,
                    person: p,
                    role,
                    unit: u,
                    from,
                    to,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let pid = person(ctx, &t, &p, Some(PersonKind::Staff)).await?;
            let unit = unit(ctx, &t, &u).await?;
            let a = ctx
                .store
                .assign_role(
                    &NewRoleAssignment {
                        tenant: t.id.clone(),
                        person: pid,
                        role: Role::parse(&role)?,
                        org_unit: unit,
                        period: period(ctx, from.as_deref(), to.as_deref())?,
                    },
                    now,
                )
                .await?;
            println!("{}", a.id);
        }
        AdminCommand::Role {
            command:
                RoleCommand::List {
                    tenant: t,
                    person: p,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let pid = person(ctx, &t, &p, Some(PersonKind::Staff)).await?;
            for a in ctx.store.role_assignments(&t.id, &pid).await? {
                let end = a
                    .period
                    .end()
                    .map_or_else(|| "open".to_string(), |e| e.date().to_string());
                let active = if a.period.contains(now) {
                    "active"
                } else {
                    "inactive"
                };
                println!(
                    "{}\t{}\t{}\t{} – {}\t{active}",
                    a.id,
                    a.role,
                    a.org_unit,
                    a.period.start().date(),
                    end
                );
            }
        }
        AdminCommand::Care {
            command:
                CareCommand::Add {
                    tenant: t,
                    patient,
                    staff,
                    unit: u,
                    purpose,
                    from,
                    to,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let patient = person(ctx, &t, &patient, Some(PersonKind::Patient)).await?;
            let party = match (staff, u) {
                (Some(s), _) => {
                    CareParty::Staff(person(ctx, &t, &s, Some(PersonKind::Staff)).await?)
                }
                (None, Some(u)) => CareParty::OrgUnit(unit(ctx, &t, &u).await?),
                (None, None) => bail!("give --staff or --unit"),
            };
            let rel = ctx
                .store
                .add_care_relationship(
                    &NewCareRelationship {
                        tenant: t.id.clone(),
                        party,
                        patient,
                        purpose,
                        period: period(ctx, from.as_deref(), to.as_deref())?,
                        decided_by: None,
                    },
                    now,
                )
                .await?;
            println!("{}", rel.id);
        }
        AdminCommand::Care {
            command: CareCommand::List { tenant: t, patient },
        } => {
            let t = tenant(ctx, &t).await?;
            let patient = person(ctx, &t, &patient, Some(PersonKind::Patient)).await?;
            for r in ctx
                .store
                .care_relationships_for_patient(&t.id, &patient)
                .await?
            {
                let who = match &r.party {
                    CareParty::Staff(p) => format!("staff {p}"),
                    CareParty::OrgUnit(u) => format!("unit {u}"),
                };
                let active = if r.period.contains(now) {
                    "active"
                } else {
                    "inactive"
                };
                println!("{}\t{who}\t{}\t{active}", r.id, r.purpose);
            }
        }
        AdminCommand::Token {
            command: TokenCommand::Create { user, ttl, name },
        } => {
            let ttl = parse_ttl(&ttl)?;
            let user = user_by_name(ctx, &user).await?;
            let token = random_token("tlt_");
            let t = ctx
                .store
                .create_api_token(
                    &NewApiToken {
                        id: PersonId::random().to_string(),
                        tenant: user.tenant.clone(),
                        user: user.id.clone(),
                        name,
                        hash: token_hash(token.expose()),
                        expires_at: now + ttl,
                    },
                    now,
                )
                .await?;
            admin_event(
                ctx,
                SecurityEventKind::TokenCreated,
                &user,
                format!("token {} expires {}", t.id, t.expires_at),
            )
            .await?;
            eprintln!(
                "token {} for {} expires {}; it is shown only now:",
                t.id, user.username, t.expires_at
            );
            println!("{}", token.expose());
        }
        AdminCommand::Tenant {
            command:
                TenantCommand::Settings {
                    tenant: t,
                    emergency_minutes,
                    emergency_overrides_block,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let mut settings = ctx.store.tenant_settings(&t.id).await?;
            if emergency_minutes.is_some() || emergency_overrides_block.is_some() {
                if let Some(m) = emergency_minutes {
                    settings.emergency_minutes = m;
                }
                if let Some(b) = emergency_overrides_block {
                    settings.emergency_overrides_block = b;
                }
                ctx.store.set_tenant_settings(&t.id, &settings, now).await?;
                tenant_event(
                    ctx,
                    &t,
                    SecurityEventKind::AccessChanged,
                    format!(
                        "settings emergency_minutes={} emergency_overrides_block={}",
                        settings.emergency_minutes, settings.emergency_overrides_block
                    ),
                )
                .await?;
            }
            println!("emergency_minutes\t{}", settings.emergency_minutes);
            println!(
                "emergency_overrides_block\t{}",
                settings.emergency_overrides_block
            );
        }
        AdminCommand::Tenant {
            command: TenantCommand::Retention { tenant: t, keep },
        } => {
            let t = tenant(ctx, &t).await?;
            if let Some(keep) = keep {
                let mut codes: Vec<String> = Vec::new();
                for c in keep.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    let cat = tillit_fhir::category::Category::parse(c)
                        .filter(|c| *c != tillit_fhir::category::Category::Directory)
                        .with_context(|| format!("'{c}' is not a category of patient data"))?;
                    if !codes.iter().any(|x| x == cat.code()) {
                        codes.push(cat.code().to_string());
                    }
                }
                ctx.store
                    .set_retained_categories(&t.id, &codes, now)
                    .await?;
                tenant_event(
                    ctx,
                    &t,
                    SecurityEventKind::PolicyChanged,
                    format!("retention rules: kept categories {}", codes.join(" ")),
                )
                .await?;
            }
            let (kept, default) = match ctx.store.retained_categories(&t.id).await? {
                Some(k) => (k, false),
                None => (
                    tillit_server::fhir::rights::DEFAULT_RETAINED
                        .iter()
                        .map(|c| c.code().to_string())
                        .collect(),
                    true,
                ),
            };
            println!(
                "kept\t{}{}",
                kept.join(","),
                if default { "\t(defaults)" } else { "" }
            );
        }
        AdminCommand::Access {
            command: AccessCommand::Grant { rule },
        } => add_rule(ctx, AccessKind::Grant, rule).await?,
        AdminCommand::Access {
            command: AccessCommand::Exclude { rule },
        } => add_rule(ctx, AccessKind::Exclusion, rule).await?,
        AdminCommand::Access {
            command: AccessCommand::List { tenant: t, patient },
        } => {
            let t = tenant(ctx, &t).await?;
            let patient = person(ctx, &t, &patient, Some(PersonKind::Patient)).await?;
            for r in ctx.store.access_rules_for_patient(&t.id, &patient).await? {
                let who = match &r.rule.party {
                    AccessParty::Person(p) => format!("person {p}"),
                    AccessParty::OrgUnit(u) => format!("unit {u}"),
                    AccessParty::Everyone => "everyone".to_string(),
                };
                let cats = if r.rule.categories.is_empty() {
                    "all".to_string()
                } else {
                    r.rule.categories.join(",")
                };
                let active = if r.rule.period.contains(now) {
                    "active"
                } else {
                    "inactive"
                };
                println!(
                    "{}\t{}\t{who}\t{cats}\t{}\t{}\t{active}",
                    r.id,
                    r.rule.kind.code(),
                    r.rule.purpose,
                    r.rule.source
                );
            }
        }
        AdminCommand::Access {
            command: AccessCommand::End { tenant: t, id },
        } => {
            let t = tenant(ctx, &t).await?;
            ctx.store.end_access_rule(&t.id, &id, now).await?;
            tenant_event(
                ctx,
                &t,
                SecurityEventKind::AccessChanged,
                format!("ended {id}"),
            )
            .await?;
            println!("ended {id}");
        }
        AdminCommand::Support {
            command:
                SupportCommand::Grant {
                    tenant: t,
                    operator,
                    ttl,
                    reason,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let ttl = parse_ttl(&ttl)?;
            if ttl > Duration::hours(24) {
                bail!("support access lasts at most 24h");
            }
            if reason.trim().chars().count() < 5 {
                bail!("give --reason (the support ticket)");
            }
            let op = user_by_name(ctx, &operator).await?;
            let grant = SupportGrant {
                id: PersonId::random().to_string(),
                tenant: t.id.clone(),
                operator: op.id.clone(),
                reason: reason.trim().to_string(),
                granted_by: None,
                period: Period::new(now, Some(now + ttl))?,
                revoked_at: None,
            };
            ctx.store.add_support_grant(&grant, now).await?;
            tenant_event(
                ctx,
                &t,
                SecurityEventKind::AccessChanged,
                format!(
                    "support grant {} to operator user {} until {}",
                    grant.id,
                    op.id.0,
                    now + ttl
                ),
            )
            .await?;
            println!("{}", grant.id);
        }
        AdminCommand::Support {
            command: SupportCommand::List { tenant: t },
        } => {
            let t = tenant(ctx, &t).await?;
            for g in ctx.store.support_grants(&t.id).await? {
                let state = if g.revoked_at.is_some() {
                    "revoked"
                } else if g.active_at(now) {
                    "active"
                } else {
                    "expired"
                };
                println!(
                    "{}\t{}\t{} – {}\t{}\t{state}",
                    g.id,
                    g.operator.0,
                    g.period.start(),
                    g.period.end().map(|e| e.to_string()).unwrap_or_default(),
                    g.reason
                );
            }
        }
        AdminCommand::Support {
            command: SupportCommand::Revoke { tenant: t, id },
        } => {
            let t = tenant(ctx, &t).await?;
            ctx.store.revoke_support_grant(&t.id, &id, now).await?;
            tenant_event(
                ctx,
                &t,
                SecurityEventKind::AccessChanged,
                format!("support grant {id} revoked"),
            )
            .await?;
            println!("revoked {id}");
        }
        AdminCommand::Delegate {
            command:
                DelegateCommand::Add {
                    tenant: t,
                    delegate,
                    on_behalf_of,
                    registration_only,
                    from,
                    to,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let d = Delegation {
                id: PersonId::random().to_string(),
                tenant: t.id.clone(),
                delegate: person(ctx, &t, &delegate, Some(PersonKind::Staff)).await?,
                on_behalf_of: person(ctx, &t, &on_behalf_of, Some(PersonKind::Staff)).await?,
                registration_only,
                period: period(ctx, from.as_deref(), to.as_deref())?,
            };
            if d.delegate == d.on_behalf_of {
                bail!("a staff member cannot act on their own behalf");
            }
            ctx.store.add_delegation(&d, now).await?;
            tenant_event(
                ctx,
                &t,
                SecurityEventKind::AccessChanged,
                format!(
                    "delegation {} Practitioner/{} for Practitioner/{}{}",
                    d.id,
                    d.delegate,
                    d.on_behalf_of,
                    if registration_only {
                        " (registration only)"
                    } else {
                        ""
                    }
                ),
            )
            .await?;
            println!("{}", d.id);
        }
        AdminCommand::Delegate {
            command:
                DelegateCommand::List {
                    tenant: t,
                    delegate,
                },
        } => {
            let t = tenant(ctx, &t).await?;
            let who = person(ctx, &t, &delegate, Some(PersonKind::Staff)).await?;
            for d in ctx.store.delegations_of(&t.id, &who).await? {
                let active = if d.period.contains(now) {
                    "active"
                } else {
                    "inactive"
                };
                println!(
                    "{}\t{}\t{}\t{active}",
                    d.id,
                    d.on_behalf_of,
                    if d.registration_only {
                        "registration-only"
                    } else {
                        "full"
                    }
                );
            }
        }
        AdminCommand::Care {
            command: CareCommand::End { tenant: t, id },
        } => {
            let t = tenant(ctx, &t).await?;
            ctx.store.end_care_relationship(&t.id, &id, now).await?;
            println!("ended {id}");
        }
        AdminCommand::Categories {
            command: CategoriesCommand::Set { tenant: t, file },
        } => {
            let t = tenant(ctx, &t).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let rules: Vec<CategoryRuleFile> = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JSON array of rules", file.display()))?;
            let mut rows = Vec::new();
            for (i, r) in rules.into_iter().enumerate() {
                if tillit_fhir::category::Category::parse(&r.category).is_none() {
                    let known: Vec<&str> = tillit_fhir::category::Category::ALL
                        .iter()
                        .map(|c| c.code())
                        .collect();
                    bail!(
                        "rule {i}: unknown category '{}'; use one of {}",
                        r.category,
                        known.join(", ")
                    );
                }
                if let Some(rt) = &r.resource_type
                    && !tillit_fhir::resources::is_known(rt)
                {
                    bail!("rule {i}: '{rt}' is not a resource type Tillit serves");
                }
                rows.push(tillit_store::CategoryRuleRow {
                    resource_type: r.resource_type,
                    system: r.system,
                    code_prefix: r.code_prefix,
                    category: r.category,
                });
            }
            ctx.store.set_category_rules(&t.id, &rows).await?;
            println!("{} rule(s) set for {}", rows.len(), t.name);
        }
        AdminCommand::Categories {
            command: CategoriesCommand::List { tenant: t },
        } => {
            let t = tenant(ctx, &t).await?;
            let show = |rt: Option<&str>,
                        sys: Option<&str>,
                        prefix: Option<&str>,
                        cat: &str,
                        origin: &str| {
                println!(
                    "{origin}\t{}\t{}\t{}\t{cat}",
                    rt.unwrap_or("*"),
                    sys.unwrap_or("*"),
                    prefix.map_or_else(|| "*".to_string(), |p| format!("{p}*"))
                );
            };
            for r in ctx.store.category_rules(&t.id).await? {
                show(
                    r.resource_type.as_deref(),
                    r.system.as_deref(),
                    r.code_prefix.as_deref(),
                    &r.category,
                    "tenant",
                );
            }
            for r in tillit_fhir::category::default_rules() {
                show(
                    r.resource_type.as_deref(),
                    r.system.as_deref(),
                    r.code_prefix.as_deref(),
                    r.category.code(),
                    "default",
                );
            }
        }
        AdminCommand::Events { tenant: t, limit } => {
            let t = match t {
                Some(t) => Some(tenant(ctx, &t).await?),
                None => None,
            };
            for e in ctx
                .store
                .security_events(t.as_ref().map(|t| &t.id), limit)
                .await?
            {
                let line = serde_json::json!({
                    "seq": e.seq,
                    "at": e.at.format(&time::format_description::well_known::Rfc3339)?,
                    "tenant": e.tenant,
                    "user": e.user.map(|u| u.0),
                    "username": e.username,
                    "kind": e.kind.code(),
                    "ok": e.outcome_ok,
                    "detail": e.detail,
                    "ip": e.ip,
                    "user_agent": e.user_agent,
                });
                println!("{line}");
            }
        }
        AdminCommand::Token {
            command: TokenCommand::List { user },
        } => {
            let user = user_by_name(ctx, &user).await?;
            for t in ctx.store.list_api_tokens(&user.id).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at <= now {
                    "expired"
                } else {
                    "active"
                };
                println!("{}\t{}\t{}\texpires {}", t.id, t.name, state, t.expires_at);
            }
        }
        AdminCommand::Token {
            command: TokenCommand::Revoke { user, id },
        } => {
            let user = user_by_name(ctx, &user).await?;
            let owned = ctx
                .store
                .list_api_tokens(&user.id)
                .await?
                .iter()
                .any(|t| t.id == id);
            if !owned {
                bail!("user {} has no token {id}", user.username);
            }
            ctx.store.revoke_api_token(&user.tenant, &id, now).await?;
            admin_event(
                ctx,
                SecurityEventKind::TokenRevoked,
                &user,
                format!("token {id}"),
            )
            .await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

fn birth_date(nid: &NationalId) -> Result<time::Date> {
    let digits = nid.expose();
    let num = |r: std::ops::Range<usize>| -> Result<u32> {
        Ok(digits.get(r).context("national id")?.parse()?)
    };
    let mut month = num(2..4)?;
    if month > 80 {
        month -= 80;
    } else if month > 40 {
        month -= 40;
    }
    let yy = num(4..6)?;
    let individual = num(6..9)?;
    let century = match (individual, yy) {
        (0..=499, _) => 1900,
        (500..=749, 54..) => 1800,
        (500..=999, ..=39) => 2000,
        _ => 1900,
    };
    let month = time::Month::try_from(u8::try_from(month)?)?;
    Ok(time::Date::from_calendar_date(
        i32::try_from(century + yy)?,
        month,
        u8::try_from(num(0..2)?)?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parses_units_and_refuses_nonsense() {
        assert_eq!(parse_ttl("8h").ok(), Some(Duration::hours(8)));
        assert_eq!(parse_ttl("30m").ok(), Some(Duration::minutes(30)));
        assert_eq!(parse_ttl("7d").ok(), Some(Duration::days(7)));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("8w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("999d").is_err());
    }
}
