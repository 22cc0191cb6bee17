//! Log review: rules that run over a tenant's new audit events and raise findings for its
//! security officer to look into (who looked at which patient, and whether they should have).
//!
//! The rules are data: a [`RuleSet`] is read from JSON, so each tenant keeps its own
//! thresholds, and [`RuleSet::default`] is a sensible start. A [`Reviewer`] runs a rule set
//! over events in sequence order and keeps only the per-actor state its windows need; state
//! older than the rule's window or cooldown is dropped as time moves on.
//!
//! Like the rest of this crate the engine is pure: the caller hands in each event with the
//! facts it looked up (same surname, same address, ...) and the local time of day in the
//! tenant's time zone, and the engine never does I/O or reads a clock. Time is the events'
//! own `at`; an event whose `at` is a little earlier than its actor's previous one counts as
//! happening at that previous time.
//!
//! Findings carry ids only (actor, patient, sequence numbers), never names.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// The actions that touch patient data (the data actions of the access policy). Every other
/// action is a security code, such as `emergency.opened` or `login.failure`.
pub const DATA_ACTIONS: [&str; 6] = ["read", "search", "history", "create", "update", "delete"];

/// The security code of opening emergency access to a patient's record.
pub const EMERGENCY_OPENED: &str = "emergency.opened";

/// The longest window or cooldown a rule may have: one week, in minutes.
pub const MAX_WINDOW_MINUTES: u32 = 10_080;

/// Minutes in a day; working hours are minutes of the day below this.
const DAY_MINUTES: u16 = 1440;

/// The default cooldown of the per-patient rules: one day, in minutes.
const DEFAULT_COOLDOWN_MINUTES: u32 = 1440;

/// How many events may pass between two sweeps of stale state, whatever the clock says.
const SWEEP_EVERY: u32 = 4096;

/// How an audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    Denied,
    Failure,
}

/// What the caller looked up about an event's actor and patient. All default to false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Facts {
    /// The actor's surname equals the patient's.
    pub same_surname: bool,
    /// The actor's address equals the patient's.
    pub same_address: bool,
    /// The actor (a staff member) is the patient.
    pub own_record: bool,
    /// The patient is also a staff member of the tenant.
    pub colleague: bool,
    /// The actor had a care relationship with the patient that has ended.
    pub relationship_ended: bool,
}

/// One audit event as the rules see it: the stored event plus the looked-up [`Facts`] and
/// the local time in the tenant's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The event's sequence number in the tenant's log.
    pub seq: u64,
    /// When it happened, in unix seconds (UTC).
    pub at: i64,
    /// The day of the week in the tenant's time zone: 0 is Monday, 6 is Sunday.
    pub local_weekday: u8,
    /// The minute of the day (0..1440) in the tenant's time zone.
    pub local_minute: u16,
    /// The acting person's id.
    pub actor: Option<String>,
    /// "staff", "patient", "relative", "integration" or "operator".
    pub actor_kind: Option<String>,
    /// The patient whose data it concerns (the compartment).
    pub patient: Option<String>,
    /// A data action (see [`DATA_ACTIONS`]) or a security code such as `emergency.opened`.
    pub action: String,
    pub outcome: Outcome,
    /// Why the access was allowed: "care-relationship", "emergency", "own-record", "relative",
    /// "grant", "role", "integration", "support" or "system".
    pub basis: Option<String>,
    #[serde(default)]
    pub facts: Facts,
}

impl Observed {
    fn by_staff(&self) -> bool {
        self.actor_kind.as_deref() == Some("staff")
    }

    /// A data action on a patient's data.
    fn data_access(&self) -> Option<&str> {
        self.patient
            .as_deref()
            .filter(|_| DATA_ACTIONS.contains(&self.action.as_str()))
    }
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// What a rule looks for, with its thresholds. Windows and cooldowns are in minutes.
///
/// Every kind but `emergency` considers staff actors only: patients reading their own record,
/// relatives and integrations never trigger them. "Accesses" are data actions (see
/// [`DATA_ACTIONS`]) on a patient's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RuleKind {
    /// At least `threshold` denied attempts on patient data (any event with a patient) by one
    /// actor within `window_minutes`. One finding per burst: the actor is then quiet for
    /// a window.
    DeniedBulk { threshold: u32, window_minutes: u32 },
    /// Every opening of emergency access (`emergency.opened`), by anyone. The accesses made
    /// under it (basis "emergency") are not flagged again.
    Emergency,
    /// A successful access to a patient with the actor's surname (not the actor's own record).
    SameSurname {
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// A successful access to a patient at the actor's address (not the actor's own record).
    SameAddress {
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// A successful access to the actor's own record through staff access.
    OwnRecord {
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// A successful access to a colleague's record (a patient who is also staff).
    ColleagueRecord {
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// An attempt on a patient whose care relationship with the actor has ended: denied, or
    /// allowed by emergency access or a grant.
    AfterRelationshipEnded {
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// Successful accesses to at least `distinct_patients` different patients by one actor
    /// within `window_minutes`; one finding, then a window's quiet.
    UnusualVolume {
        distinct_patients: u32,
        window_minutes: u32,
    },
    /// At least `threshold` successful accesses outside working hours by one actor within
    /// `window_minutes`; one finding, then a window's quiet. Outside working hours is before
    /// `workday_start_minute`, from `workday_end_minute` on, and all of Saturday and Sunday
    /// when `weekends_off_hours`.
    OffHours {
        workday_start_minute: u16,
        workday_end_minute: u16,
        #[serde(default)]
        weekends_off_hours: bool,
        threshold: u32,
        window_minutes: u32,
    },
}

fn default_cooldown() -> u32 {
    DEFAULT_COOLDOWN_MINUTES
}

fn default_enabled() -> bool {
    true
}

/// One configured rule. The per-patient rules raise at most one finding per actor and
/// patient per cooldown, so reading fifty of a neighbour's records gives one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Names the rule in findings; unique within a rule set.
    pub id: String,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    pub severity: Severity,
    pub kind: RuleKind,
}

impl RuleConfig {
    fn new(id: &str, severity: Severity, kind: RuleKind) -> Self {
        RuleConfig {
            id: id.to_string(),
            enabled: true,
            severity,
            kind,
        }
    }
}

/// A tenant's review rules, as stored in its configuration (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub rules: Vec<RuleConfig>,
}

/// The shape of a [`RuleSet`] with its rules unread, to name the rule a parse error is in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleSet {
    rules: Vec<serde_json::Value>,
}

/// Why a rule set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("the rule set is not valid: {0}")]
    Json(String),
    #[error("rules[{index}]{}: {message}", id_label(.id.as_deref()))]
    Parse {
        index: usize,
        id: Option<String>,
        message: String,
    },
    #[error("rules[{index}]: `id` must not be empty")]
    EmptyId { index: usize },
    #[error("rule `{rule}`: `id` is used by more than one rule")]
    DuplicateId { rule: String },
    #[error("rule `{rule}`: `{field}` {problem}")]
    Invalid {
        rule: String,
        field: &'static str,
        problem: String,
    },
}

fn id_label(id: Option<&str>) -> String {
    id.map(|id| format!(" (rule `{id}`)")).unwrap_or_default()
}

impl Default for RuleSet {
    /// Thresholds for a municipality's health services; tenants tune them in their own set.
    fn default() -> Self {
        use RuleKind::*;
        use Severity::*;
        let cooldown_minutes = DEFAULT_COOLDOWN_MINUTES;
        RuleSet {
            rules: vec![
                RuleConfig::new(
                    "denied-bulk",
                    Medium,
                    DeniedBulk {
                        threshold: 10,
                        window_minutes: 10,
                    },
                ),
                RuleConfig::new("emergency", High, Emergency),
                RuleConfig::new("same-surname", Medium, SameSurname { cooldown_minutes }),
                RuleConfig::new("same-address", Medium, SameAddress { cooldown_minutes }),
                RuleConfig::new("own-record", Medium, OwnRecord { cooldown_minutes }),
                RuleConfig::new("colleague-record", Low, ColleagueRecord { cooldown_minutes }),
                RuleConfig::new(
                    "after-relationship-ended",
                    Medium,
                    AfterRelationshipEnded { cooldown_minutes },
                ),
                RuleConfig::new(
                    "unusual-volume",
                    Medium,
                    UnusualVolume {
                        distinct_patients: 50,
                        window_minutes: 60,
                    },
                ),
                RuleConfig::new(
                    "off-hours",
                    Low,
                    OffHours {
                        workday_start_minute: 6 * 60,
                        workday_end_minute: 22 * 60,
                        weekends_off_hours: false,
                        threshold: 20,
                        window_minutes: 60,
                    },
                ),
            ],
        }
    }
}

impl RuleSet {
    /// Reads a rule set from JSON and validates it.
    pub fn from_json(json: &str) -> Result<RuleSet, RuleError> {
        let raw: RawRuleSet =
            serde_json::from_str(json).map_err(|e| RuleError::Json(e.to_string()))?;
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (index, value) in raw.rules.iter().enumerate() {
            let rule = RuleConfig::deserialize(value).map_err(|e| RuleError::Parse {
                index,
                id: value
                    .get("id")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
                message: e.to_string(),
            })?;
            rules.push(rule);
        }
        let set = RuleSet { rules };
        set.validate()?;
        Ok(set)
    }

    /// Checks ids (non-empty, unique), thresholds (at least 1), windows and cooldowns
    /// (1 to [`MAX_WINDOW_MINUTES`]) and working hours (minutes of the day, start before end).
    pub fn validate(&self) -> Result<(), RuleError> {
        let mut seen = std::collections::HashSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.id.trim().is_empty() {
                return Err(RuleError::EmptyId { index });
            }
            if !seen.insert(rule.id.as_str()) {
                return Err(RuleError::DuplicateId {
                    rule: rule.id.clone(),
                });
            }
            rule.validate()?;
        }
        Ok(())
    }
}

impl RuleConfig {
    fn validate(&self) -> Result<(), RuleError> {
        let invalid = |field: &'static str, problem: String| RuleError::Invalid {
            rule: self.id.clone(),
            field,
            problem,
        };
        let threshold = |field: &'static str, n: u32| {
            if n >= 1 {
                Ok(())
            } else {
                Err(invalid(field, format!("must be at least 1 (is {n})")))
            }
        };
        let window = |field: &'static str, n: u32| {
            if (1..=MAX_WINDOW_MINUTES).contains(&n) {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    format!("must be between 1 and {MAX_WINDOW_MINUTES} minutes (is {n})"),
                ))
            }
        };
        match &self.kind {
            RuleKind::DeniedBulk {
                threshold: t,
                window_minutes,
            } => {
                threshold("threshold", *t)?;
                window("window_minutes", *window_minutes)
            }
            RuleKind::Emergency => Ok(()),
            RuleKind::SameSurname { cooldown_minutes }
            | RuleKind::SameAddress { cooldown_minutes }
            | RuleKind::OwnRecord { cooldown_minutes }
            | RuleKind::ColleagueRecord { cooldown_minutes }
            | RuleKind::AfterRelationshipEnded { cooldown_minutes } => {
                window("cooldown_minutes", *cooldown_minutes)
            }
            RuleKind::UnusualVolume {
                distinct_patients,
                window_minutes,
            } => {
                threshold("distinct_patients", *distinct_patients)?;
                window("window_minutes", *window_minutes)
            }
            RuleKind::OffHours {
                workday_start_minute,
                workday_end_minute,
                threshold: t,
                window_minutes,
                ..
            } => {
                for (field, minute) in [
                    ("workday_start_minute", *workday_start_minute),
                    ("workday_end_minute", *workday_end_minute),
                ] {
                    if minute >= DAY_MINUTES {
                        return Err(invalid(
                            field,
                            format!("must be a minute of the day below {DAY_MINUTES} (is {minute})"),
                        ));
                    }
                }
                if workday_start_minute >= workday_end_minute {
                    return Err(invalid(
                        "workday_start_minute",
                        format!(
                            "must be before `workday_end_minute` ({workday_start_minute} is not \
                             before {workday_end_minute})"
                        ),
                    ));
                }
                threshold("threshold", *t)?;
                window("window_minutes", *window_minutes)
            }
        }
    }

    /// The window or cooldown in seconds that the rule's state must cover, clamped to the
    /// valid range.
    fn span(&self) -> i64 {
        match &self.kind {
            RuleKind::Emergency => 0,
            RuleKind::DeniedBulk { window_minutes, .. }
            | RuleKind::UnusualVolume { window_minutes, .. }
            | RuleKind::OffHours { window_minutes, .. } => seconds(*window_minutes),
            RuleKind::SameSurname { cooldown_minutes }
            | RuleKind::SameAddress { cooldown_minutes }
            | RuleKind::OwnRecord { cooldown_minutes }
            | RuleKind::ColleagueRecord { cooldown_minutes }
            | RuleKind::AfterRelationshipEnded { cooldown_minutes } => seconds(*cooldown_minutes),
        }
    }
}

/// Minutes as seconds, clamped to 1..=[`MAX_WINDOW_MINUTES`] minutes.
fn seconds(minutes: u32) -> i64 {
    i64::from(minutes.clamp(1, MAX_WINDOW_MINUTES)) * 60
}

/// A count threshold, at least 1.
fn at_least_one(n: u32) -> usize {
    usize::try_from(n.max(1)).unwrap_or(usize::MAX)
}

/// "1 minute", "10 minutes".
fn minutes(n: u32) -> String {
    if n == 1 {
        "1 minute".to_string()
    } else {
        format!("{n} minutes")
    }
}

fn who(actor: Option<&str>) -> String {
    actor.map_or_else(|| "an unknown actor".to_string(), str::to_string)
}

/// Something a rule found: the events behind it and a one-sentence summary with ids only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The id of the rule that raised it.
    pub rule: String,
    pub severity: Severity,
    pub actor: Option<String>,
    /// The patient, for the per-patient rules; `None` for the volume and burst rules.
    pub patient: Option<String>,
    /// The events behind it; for a window rule, the counted events in the window.
    pub seqs: Vec<u64>,
    /// One English sentence, ids only.
    pub summary: String,
}

/// A counted event in an actor's window.
#[derive(Debug, Clone)]
struct Hit {
    at: i64,
    seq: u64,
    /// Kept only when the rule counts distinct patients.
    patient: Option<String>,
}

/// One actor's sliding window for one rule.
#[derive(Debug, Clone)]
struct ActorWindow {
    hits: VecDeque<Hit>,
    /// The number of hits per patient, when the rule counts distinct patients.
    patients: HashMap<String, usize>,
    /// The latest time counted; time does not go backwards within a window.
    last_at: i64,
    /// No new finding before this time (the cooldown after a finding).
    quiet_until: i64,
}

impl Default for ActorWindow {
    fn default() -> Self {
        ActorWindow {
            hits: VecDeque::new(),
            patients: HashMap::new(),
            last_at: i64::MIN,
            quiet_until: i64::MIN,
        }
    }
}

impl ActorWindow {
    /// Counts an event and returns the count and the window's seqs when it reaches the
    /// threshold outside a cooldown. With `distinct`, the count is of different patients.
    fn hit(
        &mut self,
        e: &Observed,
        threshold: usize,
        window: i64,
        distinct: bool,
    ) -> Option<(usize, Vec<u64>)> {
        let now = e.at.max(self.last_at);
        self.last_at = now;
        let patient = if distinct { e.patient.clone() } else { None };
        if let Some(p) = &patient {
            *self.patients.entry(p.clone()).or_insert(0) += 1;
        }
        self.hits.push_back(Hit {
            at: now,
            seq: e.seq,
            patient,
        });
        while let Some(front) = self.hits.front() {
            if now.saturating_sub(front.at) < window {
                break;
            }
            if let Some(old) = self.hits.pop_front()
                && let Some(p) = old.patient
                && let Some(n) = self.patients.get_mut(&p)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.patients.remove(&p);
                }
            }
        }
        if now < self.quiet_until {
            return None;
        }
        let count = if distinct {
            self.patients.len()
        } else {
            self.hits.len()
        };
        if count < threshold {
            return None;
        }
        self.quiet_until = now.saturating_add(window);
        Some((count, self.hits.iter().map(|h| h.seq).collect()))
    }
}

/// What a rule remembers between events.
#[derive(Debug, Clone)]
enum State {
    /// The rule looks at each event alone.
    Stateless,
    /// Sliding windows per actor.
    Windows(HashMap<Option<String>, ActorWindow>),
    /// The time of the last finding per actor and patient.
    Pairs(HashMap<(Option<String>, String), i64>),
}

impl State {
    /// Drops what no longer matters at `now`: windows whose events have all left and whose
    /// cooldown is over, and per-patient cooldowns that are over.
    fn evict(&mut self, now: i64, span: i64) {
        match self {
            State::Stateless => {}
            State::Windows(windows) => windows.retain(|_, w| {
                now.saturating_sub(w.last_at) < span || now < w.quiet_until
            }),
            State::Pairs(pairs) => pairs.retain(|_, last| now.saturating_sub(*last) < span),
        }
    }

    fn size(&self) -> usize {
        match self {
            State::Stateless => 0,
            State::Windows(windows) => windows.values().map(|w| 1 + w.hits.len()).sum(),
            State::Pairs(pairs) => pairs.len(),
        }
    }
}

/// An enabled rule and its state.
#[derive(Debug, Clone)]
struct Active {
    config: RuleConfig,
    /// Its window or cooldown, in seconds.
    span: i64,
    state: State,
}

impl Active {
    fn new(config: RuleConfig) -> Self {
        let state = match config.kind {
            RuleKind::Emergency => State::Stateless,
            RuleKind::DeniedBulk { .. }
            | RuleKind::UnusualVolume { .. }
            | RuleKind::OffHours { .. } => State::Windows(HashMap::new()),
            RuleKind::SameSurname { .. }
            | RuleKind::SameAddress { .. }
            | RuleKind::OwnRecord { .. }
            | RuleKind::ColleagueRecord { .. }
            | RuleKind::AfterRelationshipEnded { .. } => State::Pairs(HashMap::new()),
        };
        Active {
            span: config.span(),
            config,
            state,
        }
    }

    fn finding(&self, e: &Observed, patient: Option<&str>, seqs: Vec<u64>, summary: String) -> Finding {
        Finding {
            rule: self.config.id.clone(),
            severity: self.config.severity,
            actor: e.actor.clone(),
            patient: patient.map(str::to_string),
            seqs,
            summary,
        }
    }

    fn observe(&mut self, e: &Observed) -> Option<Finding> {
        if let RuleKind::Emergency = self.config.kind {
            if e.action != EMERGENCY_OPENED {
                return None;
            }
            let verb = if e.outcome == Outcome::Success {
                "opened"
            } else {
                "attempted"
            };
            let target = e
                .patient
                .as_deref()
                .map_or_else(String::new, |p| format!(" to patient {p}"));
            let summary = format!(
                "Emergency access{target} {verb} by {}",
                who(e.actor.as_deref())
            );
            return Some(self.finding(e, e.patient.as_deref(), vec![e.seq], summary));
        }
        if !e.by_staff() {
            return None;
        }
        let actor = who(e.actor.as_deref());
        match &self.config.kind {
            RuleKind::DeniedBulk {
                threshold,
                window_minutes,
            } => {
                if e.outcome != Outcome::Denied || e.patient.is_none() {
                    return None;
                }
                let (count, seqs) =
                    self.window(e)?
                        .hit(e, at_least_one(*threshold), self.span, false)?;
                let summary = format!(
                    "{count} denied accesses by {actor} within {}",
                    minutes(*window_minutes)
                );
                Some(self.finding(e, None, seqs, summary))
            }
            RuleKind::UnusualVolume {
                distinct_patients,
                window_minutes,
            } => {
                if e.outcome != Outcome::Success || e.data_access().is_none() {
                    return None;
                }
                let (count, seqs) =
                    self.window(e)?
                        .hit(e, at_least_one(*distinct_patients), self.span, true)?;
                let summary = format!(
                    "{actor} accessed {count} different patients within {}",
                    minutes(*window_minutes)
                );
                Some(self.finding(e, None, seqs, summary))
            }
            RuleKind::OffHours {
                workday_start_minute,
                workday_end_minute,
                weekends_off_hours,
                threshold,
                window_minutes,
            } => {
                let weekend = *weekends_off_hours && matches!(e.local_weekday, 5 | 6);
                let off = weekend
                    || e.local_minute < *workday_start_minute
                    || e.local_minute >= *workday_end_minute;
                if !off || e.outcome != Outcome::Success || e.data_access().is_none() {
                    return None;
                }
                let (count, seqs) =
                    self.window(e)?
                        .hit(e, at_least_one(*threshold), self.span, false)?;
                let summary = format!(
                    "{count} accesses by {actor} outside working hours within {}",
                    minutes(*window_minutes)
                );
                Some(self.finding(e, None, seqs, summary))
            }
            kind => {
                let patient = e.data_access()?;
                let facts = &e.facts;
                let success = e.outcome == Outcome::Success;
                let summary = match kind {
                    RuleKind::SameSurname { .. }
                        if success && facts.same_surname && !facts.own_record =>
                    {
                        format!("{actor} accessed patient {patient}, who has the same surname")
                    }
                    RuleKind::SameAddress { .. }
                        if success && facts.same_address && !facts.own_record =>
                    {
                        format!("{actor} accessed patient {patient}, who has the same address")
                    }
                    RuleKind::OwnRecord { .. } if success && facts.own_record => {
                        format!("{actor} accessed their own record {patient} through staff access")
                    }
                    RuleKind::ColleagueRecord { .. }
                        if success && facts.colleague && !facts.own_record =>
                    {
                        format!("{actor} accessed the record of colleague {patient}")
                    }
                    RuleKind::AfterRelationshipEnded { .. } if facts.relationship_ended => {
                        match (e.outcome, e.basis.as_deref()) {
                            (Outcome::Denied, _) => format!(
                                "{actor} was denied access to patient {patient} after their care \
                                 relationship ended"
                            ),
                            (Outcome::Success, Some(basis @ ("emergency" | "grant"))) => format!(
                                "{actor} accessed patient {patient} by {basis} after their care \
                                 relationship ended"
                            ),
                            _ => return None,
                        }
                    }
                    _ => return None,
                };
                let State::Pairs(pairs) = &mut self.state else {
                    return None;
                };
                let key = (e.actor.clone(), patient.to_string());
                if let Some(last) = pairs.get(&key)
                    && e.at.saturating_sub(*last) < self.span
                {
                    return None;
                }
                pairs.insert(key, e.at);
                Some(self.finding(e, Some(patient), vec![e.seq], summary))
            }
        }
    }

    /// The event's actor's window, for a window rule.
    fn window(&mut self, e: &Observed) -> Option<&mut ActorWindow> {
        match &mut self.state {
            State::Windows(windows) => Some(windows.entry(e.actor.clone()).or_default()),
            _ => None,
        }
    }
}

/// Runs a rule set over a tenant's events, in sequence order, and reports findings.
///
/// Memory stays bounded: what a rule keeps per actor (or per actor and patient) is dropped
/// once its window or cooldown has passed.
#[derive(Debug, Clone)]
pub struct Reviewer {
    rules: Vec<Active>,
    /// The largest window or cooldown, in seconds.
    horizon: i64,
    /// The latest `at` seen.
    clock: i64,
    /// The clock at the last sweep of stale state.
    swept_at: i64,
    /// Events since the last sweep.
    since_sweep: u32,
}

impl Reviewer {
    /// A reviewer running the enabled rules of `rules`. The set should have passed
    /// [`RuleSet::validate`]; out-of-range thresholds and windows are clamped to the valid
    /// range.
    pub fn new(rules: RuleSet) -> Self {
        let rules: Vec<Active> = rules
            .rules
            .into_iter()
            .filter(|r| r.enabled)
            .map(Active::new)
            .collect();
        let horizon = rules.iter().map(|r| r.span).max().unwrap_or(0).max(60);
        Reviewer {
            rules,
            horizon,
            clock: i64::MIN,
            swept_at: i64::MIN,
            since_sweep: 0,
        }
    }

    /// Runs the rules over the next event and returns what they found, in rule order.
    pub fn observe(&mut self, e: &Observed) -> Vec<Finding> {
        self.clock = self.clock.max(e.at);
        let findings = self.rules.iter_mut().filter_map(|r| r.observe(e)).collect();
        self.since_sweep = self.since_sweep.saturating_add(1);
        if self.since_sweep >= SWEEP_EVERY || self.clock.saturating_sub(self.swept_at) >= self.horizon
        {
            for rule in &mut self.rules {
                rule.state.evict(self.clock, rule.span);
            }
            self.swept_at = self.clock;
            self.since_sweep = 0;
        }
        findings
    }

    /// How many entries of state the rules hold (windows, their events, cooldowns).
    #[cfg(test)]
    fn state_size(&self) -> usize {
        self.rules.iter().map(|r| r.state.size()).sum()
    }
}
