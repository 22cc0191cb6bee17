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
                RuleConfig::new(
                    "colleague-record",
                    Low,
                    ColleagueRecord { cooldown_minutes },
                ),
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
                            format!(
                                "must be a minute of the day below {DAY_MINUTES} (is {minute})"
                            ),
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
            State::Windows(windows) => {
                windows.retain(|_, w| now.saturating_sub(w.last_at) < span || now < w.quiet_until)
            }
            State::Pairs(pairs) => pairs.retain(|_, last| now.saturating_sub(*last) < span),
        }
    }

    #[cfg(test)]
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

    fn finding(
        &self,
        e: &Observed,
        patient: Option<&str>,
        seqs: Vec<u64>,
        summary: String,
    ) -> Finding {
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
        let span = self.span;
        // The kind holds no heap data: a copy frees `self` for the state and the finding.
        match self.config.kind.clone() {
            RuleKind::DeniedBulk {
                threshold,
                window_minutes,
            } => {
                if e.outcome != Outcome::Denied || e.patient.is_none() {
                    return None;
                }
                let (count, seqs) =
                    window(&mut self.state, e)?.hit(e, at_least_one(threshold), span, false)?;
                let summary = format!(
                    "{count} denied accesses by {actor} within {}",
                    minutes(window_minutes)
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
                let (count, seqs) = window(&mut self.state, e)?.hit(
                    e,
                    at_least_one(distinct_patients),
                    span,
                    true,
                )?;
                let summary = format!(
                    "{actor} accessed {count} different patients within {}",
                    minutes(window_minutes)
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
                let weekend = weekends_off_hours && matches!(e.local_weekday, 5 | 6);
                let off = weekend
                    || e.local_minute < workday_start_minute
                    || e.local_minute >= workday_end_minute;
                if !off || e.outcome != Outcome::Success || e.data_access().is_none() {
                    return None;
                }
                let (count, seqs) =
                    window(&mut self.state, e)?.hit(e, at_least_one(threshold), span, false)?;
                let summary = format!(
                    "{count} accesses by {actor} outside working hours within {}",
                    minutes(window_minutes)
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
                    && e.at.saturating_sub(*last) < span
                {
                    return None;
                }
                pairs.insert(key, e.at);
                Some(self.finding(e, Some(patient), vec![e.seq], summary))
            }
        }
    }
}

/// The event's actor's window, for a window rule.
fn window<'a>(state: &'a mut State, e: &Observed) -> Option<&'a mut ActorWindow> {
    match state {
        State::Windows(windows) => Some(windows.entry(e.actor.clone()).or_default()),
        _ => None,
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
        if self.since_sweep >= SWEEP_EVERY
            || self.clock.saturating_sub(self.swept_at) >= self.horizon
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

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;
    use proptest::prelude::*;

    /// Monday 2026-01-05 00:00 local, taken as UTC for the tests.
    const DAY: i64 = 1_767_571_200;

    /// A staff read at `minute` past midnight on a Tuesday, allowed by a care relationship.
    fn read(seq: u64, minute: i64, actor: &str, patient: &str) -> Observed {
        Observed {
            seq,
            at: DAY + 86_400 + minute * 60,
            local_weekday: 1,
            local_minute: u16::try_from(minute.rem_euclid(1440)).unwrap(),
            actor: Some(actor.to_string()),
            actor_kind: Some("staff".to_string()),
            patient: Some(patient.to_string()),
            action: "read".to_string(),
            outcome: Outcome::Success,
            basis: Some("care-relationship".to_string()),
            facts: Facts::default(),
        }
    }

    fn denied(seq: u64, minute: i64, actor: &str, patient: &str) -> Observed {
        Observed {
            outcome: Outcome::Denied,
            basis: None,
            ..read(seq, minute, actor, patient)
        }
    }

    fn with_facts(mut e: Observed, f: impl FnOnce(&mut Facts)) -> Observed {
        f(&mut e.facts);
        e
    }

    fn as_kind(mut e: Observed, kind: &str) -> Observed {
        e.actor_kind = Some(kind.to_string());
        e
    }

    fn run(events: &[Observed]) -> Vec<Finding> {
        run_with(RuleSet::default(), events)
    }

    fn run_with(rules: RuleSet, events: &[Observed]) -> Vec<Finding> {
        let mut reviewer = Reviewer::new(rules);
        events.iter().flat_map(|e| reviewer.observe(e)).collect()
    }

    fn rules_of(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.rule.as_str()).collect()
    }

    /// The default set with one rule's kind replaced.
    fn with_rule(id: &str, kind: RuleKind) -> RuleSet {
        let mut set = RuleSet::default();
        for r in &mut set.rules {
            if r.id == id {
                r.kind = kind.clone();
            }
        }
        set
    }

    #[test]
    fn denied_bulk_gives_one_finding_per_burst() {
        // Twelve denials a few seconds apart: one finding at the tenth, none after.
        let events: Vec<_> = (0..12)
            .map(|i| {
                let mut e = denied(i, 600, "staff-1", &format!("patient-{i}"));
                e.at += i as i64 * 20;
                e
            })
            .collect();
        let found = run(&events);
        assert_eq!(rules_of(&found), ["denied-bulk"]);
        assert_eq!(found[0].seqs, (0..10).collect::<Vec<_>>());
        assert_eq!(found[0].actor.as_deref(), Some("staff-1"));
        assert_eq!(found[0].patient, None);
        assert_eq!(found[0].severity, Severity::Medium);
        assert_eq!(
            found[0].summary,
            "10 denied accesses by staff-1 within 10 minutes"
        );
    }

    #[test]
    fn denied_bulk_fires_again_once_the_cooldown_has_passed() {
        let mut events: Vec<_> = (0..10).map(|i| denied(i, 600, "staff-1", "p")).collect();
        events.extend((10..20).map(|i| denied(i, 615, "staff-1", "p")));
        let found = run(&events);
        assert_eq!(rules_of(&found), ["denied-bulk", "denied-bulk"]);
        assert_eq!(found[1].seqs, (10..20).collect::<Vec<_>>());
    }

    #[test]
    fn denied_bulk_near_misses() {
        // Nine within the window.
        let nine: Vec<_> = (0..9)
            .map(|i| denied(i, 600 + i as i64, "s", "p"))
            .collect();
        assert!(run(&nine).is_empty());
        // Ten, but spread over more than ten minutes.
        let spread: Vec<_> = (0..10)
            .map(|i| denied(i, 600 + 2 * i as i64, "s", "p"))
            .collect();
        assert!(run(&spread).is_empty());
        // Ten by a patient, or without a patient (a failed login is not patient data).
        let patient: Vec<_> = (0..10)
            .map(|i| as_kind(denied(i, 600, "s", "p"), "patient"))
            .collect();
        assert!(run(&patient).is_empty());
        let no_patient: Vec<_> = (0..10)
            .map(|i| Observed {
                patient: None,
                action: "login.failure".to_string(),
                ..denied(i, 600, "s", "p")
            })
            .collect();
        assert!(run(&no_patient).is_empty());
        // Ten by two different actors.
        let two: Vec<_> = (0..10)
            .map(|i| denied(i, 600, if i % 2 == 0 { "a" } else { "b" }, "p"))
            .collect();
        assert!(run(&two).is_empty());
    }

    #[test]
    fn emergency_opening_is_flagged_and_its_accesses_are_not() {
        let open = Observed {
            action: EMERGENCY_OPENED.to_string(),
            basis: Some("emergency".to_string()),
            ..read(0, 600, "staff-1", "patient-9")
        };
        let mut events = vec![open];
        events.extend((1..6).map(|i| Observed {
            basis: Some("emergency".to_string()),
            ..read(i, 601, "staff-1", "patient-9")
        }));
        let found = run(&events);
        assert_eq!(rules_of(&found), ["emergency"]);
        assert_eq!(found[0].seqs, [0]);
        assert_eq!(found[0].severity, Severity::High);
        assert_eq!(found[0].patient.as_deref(), Some("patient-9"));
        assert_eq!(
            found[0].summary,
            "Emergency access to patient patient-9 opened by staff-1"
        );
    }

    #[test]
    fn emergency_near_miss() {
        // Accesses under emergency access without the opening, and other security codes.
        let events = vec![
            Observed {
                basis: Some("emergency".to_string()),
                ..read(0, 600, "staff-1", "patient-9")
            },
            Observed {
                action: "policy.changed".to_string(),
                ..read(1, 601, "staff-1", "patient-9")
            },
        ];
        assert!(run(&events).is_empty());
    }

    #[test]
    fn same_surname_once_per_actor_and_patient_per_cooldown() {
        let mut events: Vec<_> = (0..50)
            .map(|i| {
                with_facts(read(i, 600 + i as i64, "s", "neighbour"), |f| {
                    f.same_surname = true
                })
            })
            .collect();
        // Another patient with the same surname is another finding.
        events.push(with_facts(read(50, 700, "s", "cousin"), |f| {
            f.same_surname = true
        }));
        // A day later the same patient is flagged again.
        events.push(with_facts(read(51, 600 + 1440, "s", "neighbour"), |f| {
            f.same_surname = true
        }));
        let found = run(&events);
        assert_eq!(rules_of(&found), ["same-surname"; 3]);
        assert_eq!(found[0].seqs, [0]);
        assert_eq!(found[0].patient.as_deref(), Some("neighbour"));
        assert_eq!(found[1].seqs, [50]);
        assert_eq!(found[2].seqs, [51]);
    }

    #[test]
    fn same_surname_near_misses() {
        let fact = |e| with_facts(e, |f| f.same_surname = true);
        let events = vec![
            as_kind(fact(read(0, 600, "s", "p")), "patient"),
            as_kind(fact(read(1, 600, "s", "p")), "relative"),
            fact(denied(2, 600, "s", "p")),
            with_facts(read(3, 600, "s", "s"), |f| {
                f.same_surname = true;
                f.own_record = true;
            }),
            read(4, 600, "s", "p"),
        ];
        assert_eq!(rules_of(&run(&events)), ["own-record"]);
    }

    #[test]
    fn same_address_once_per_pair() {
        let events: Vec<_> = (0..20)
            .map(|i| with_facts(read(i, 600, "s", "p"), |f| f.same_address = true))
            .collect();
        let found = run(&events);
        assert_eq!(rules_of(&found), ["same-address"]);
        assert_eq!(
            found[0].summary,
            "s accessed patient p, who has the same address"
        );
    }

    #[test]
    fn same_address_near_miss() {
        let events = vec![
            as_kind(
                with_facts(read(0, 600, "s", "p"), |f| f.same_address = true),
                "integration",
            ),
            with_facts(denied(1, 600, "s", "p"), |f| f.same_address = true),
        ];
        assert!(run(&events).is_empty());
    }

    #[test]
    fn own_record_once_per_cooldown() {
        let events: Vec<_> = (0..5)
            .map(|i| with_facts(read(i, 600, "s", "s"), |f| f.own_record = true))
            .collect();
        let found = run(&events);
        assert_eq!(rules_of(&found), ["own-record"]);
        assert_eq!(found[0].patient.as_deref(), Some("s"));
    }

    #[test]
    fn own_record_near_miss_patient_reading_own_record() {
        let e = Observed {
            basis: Some("own-record".to_string()),
            ..as_kind(
                with_facts(read(0, 600, "s", "s"), |f| f.own_record = true),
                "patient",
            )
        };
        assert!(run(&[e]).is_empty());
    }

    #[test]
    fn colleague_record_is_low_and_once_per_pair() {
        let events: Vec<_> = (0..3)
            .map(|i| with_facts(read(i, 600, "s", "colleague"), |f| f.colleague = true))
            .collect();
        let found = run(&events);
        assert_eq!(rules_of(&found), ["colleague-record"]);
        assert_eq!(found[0].severity, Severity::Low);
    }

    #[test]
    fn colleague_record_near_miss_own_record() {
        // Staff are colleagues of themselves; reading one's own record is the own-record rule.
        let e = with_facts(read(0, 600, "s", "s"), |f| {
            f.colleague = true;
            f.own_record = true;
        });
        assert_eq!(rules_of(&run(&[e])), ["own-record"]);
        let relative = as_kind(
            with_facts(read(0, 600, "r", "c"), |f| f.colleague = true),
            "relative",
        );
        assert!(run(&[relative]).is_empty());
    }

    #[test]
    fn after_relationship_ended_denied_or_by_emergency_or_grant() {
        let ended = |e| with_facts(e, |f| f.relationship_ended = true);
        let by = |basis: &str, e: Observed| Observed {
            basis: Some(basis.to_string()),
            ..e
        };
        let events = vec![
            ended(denied(0, 600, "s", "a")),
            ended(denied(1, 601, "s", "a")),
            ended(by("emergency", read(2, 602, "s", "b"))),
            ended(by("grant", read(3, 603, "s", "c"))),
        ];
        let found = run(&events);
        assert_eq!(rules_of(&found), ["after-relationship-ended"; 3]);
        let seqs: Vec<_> = found.iter().map(|f| f.seqs[0]).collect();
        assert_eq!(seqs, [0, 2, 3]);
    }

    #[test]
    fn after_relationship_ended_near_misses() {
        let ended = |e| with_facts(e, |f| f.relationship_ended = true);
        let events = vec![
            // Allowed on another basis (a new relationship, or a role).
            ended(read(0, 600, "s", "a")),
            // Not staff.
            as_kind(ended(denied(1, 600, "s", "a")), "patient"),
            // A failure is neither denied nor allowed.
            Observed {
                outcome: Outcome::Failure,
                ..ended(read(2, 600, "s", "a"))
            },
        ];
        assert!(run(&events).is_empty());
    }

    #[test]
    fn unusual_volume_fires_once() {
        let events: Vec<_> = (0..80)
            .map(|i| read(i, 600 + i as i64 / 2, "s", &format!("p{i}")))
            .collect();
        let found = run(&events);
        assert_eq!(rules_of(&found), ["unusual-volume"]);
        assert_eq!(found[0].seqs, (0..50).collect::<Vec<_>>());
        assert_eq!(found[0].patient, None);
        assert_eq!(
            found[0].summary,
            "s accessed 50 different patients within 60 minutes"
        );
    }

    #[test]
    fn unusual_volume_near_misses() {
        let distinct = |n: u64, kind: &str| -> Vec<Observed> {
            (0..n)
                .map(|i| as_kind(read(i, 600, "s", &format!("p{i}")), kind))
                .collect()
        };
        assert!(run(&distinct(49, "staff")).is_empty());
        assert!(run(&distinct(500, "integration")).is_empty());
        assert!(run(&distinct(500, "patient")).is_empty());
        // Many reads of the same few patients.
        let same: Vec<_> = (0..200)
            .map(|i| read(i, 600, "s", &format!("p{}", i % 10)))
            .collect();
        assert!(run(&same).is_empty());
        // Fifty patients, but over more than an hour.
        let slow: Vec<_> = (0..50)
            .map(|i| read(i, 600 + 2 * i as i64, "s", &format!("p{i}")))
            .collect();
        assert!(run(&slow).is_empty());
    }

    #[test]
    fn off_hours_fires_once() {
        let events: Vec<_> = (0..30)
            .map(|i| read(i, 23 * 60 + i as i64, "s", &format!("p{}", i % 3)))
            .collect();
        let found = run(&events);
        assert_eq!(rules_of(&found), ["off-hours"]);
        assert_eq!(found[0].seqs, (0..20).collect::<Vec<_>>());
        assert_eq!(
            found[0].summary,
            "20 accesses by s outside working hours within 60 minutes"
        );
    }

    #[test]
    fn off_hours_near_misses() {
        let night = |n: u64| -> Vec<Observed> {
            (0..n)
                .map(|i| read(i, 5 * 60 + i as i64, "s", "p"))
                .collect()
        };
        assert!(run(&night(19)).is_empty());
        assert_eq!(rules_of(&run(&night(20))), ["off-hours"]);
        // Within working hours.
        let day: Vec<_> = (0..40).map(|i| read(i, 600 + i as i64, "s", "p")).collect();
        assert!(run(&day).is_empty());
        // At night, by a patient.
        let patient: Vec<_> = night(40)
            .into_iter()
            .map(|e| as_kind(e, "patient"))
            .collect();
        assert!(run(&patient).is_empty());
    }

    #[test]
    fn off_hours_weekends_when_configured() {
        let saturday: Vec<_> = (0..20)
            .map(|i| Observed {
                local_weekday: 5,
                ..read(i, 600 + i as i64, "s", "p")
            })
            .collect();
        assert!(run(&saturday).is_empty());
        let rules = with_rule(
            "off-hours",
            RuleKind::OffHours {
                workday_start_minute: 8 * 60,
                workday_end_minute: 16 * 60,
                weekends_off_hours: true,
                threshold: 20,
                window_minutes: 60,
            },
        );
        assert_eq!(rules_of(&run_with(rules, &saturday)), ["off-hours"]);
    }

    #[test]
    fn disabled_rules_do_not_fire() {
        let mut rules = RuleSet::default();
        for r in &mut rules.rules {
            r.enabled = false;
        }
        let events: Vec<_> = (0..20).map(|i| denied(i, 600, "s", "p")).collect();
        assert!(run_with(rules, &events).is_empty());
    }

    #[test]
    fn time_going_backwards_is_handled() {
        // Out-of-order clocks, extremes included: no panic, and a burst is still one burst.
        let mut events: Vec<_> = (0..12)
            .map(|i| {
                let mut e = denied(i, 600, "s", &format!("p{i}"));
                e.at -= (i as i64 % 3) * 7;
                e
            })
            .collect();
        for (seq, at) in [(12, i64::MAX), (13, i64::MIN), (14, 0), (15, i64::MAX)] {
            let mut e = with_facts(denied(seq, 600, "t", "p"), |f| f.relationship_ended = true);
            e.at = at;
            events.push(e);
        }
        let found = run(&events);
        assert_eq!(
            rules_of(&found),
            ["denied-bulk", "after-relationship-ended"]
        );
    }

    #[test]
    fn state_is_evicted_once_windows_have_passed() {
        let mut reviewer = Reviewer::new(RuleSet::default());
        // A day of traffic by many actors, with facts that keep cooldowns.
        for i in 0..2000u64 {
            let minute = i as i64;
            let e = with_facts(
                denied(i, minute, &format!("s{}", i % 300), &format!("p{i}")),
                |f| f.relationship_ended = true,
            );
            reviewer.observe(&e);
        }
        let busy = reviewer.state_size();
        // Two days later, one quiet event: only its own state is left.
        reviewer.observe(&read(2000, 2000 + 2 * 1440, "x", "y"));
        assert!(busy > 100, "{busy}");
        assert!(reviewer.state_size() <= 2, "{}", reviewer.state_size());
    }

    #[test]
    fn default_round_trips_through_json() {
        let json = serde_json::to_string_pretty(&RuleSet::default()).unwrap();
        assert_eq!(RuleSet::from_json(&json), Ok(RuleSet::default()));
        assert!(json.contains(r#""type": "denied-bulk""#), "{json}");
        RuleSet::default().validate().unwrap();
    }

    #[test]
    fn json_uses_the_documented_shapes() {
        let json = r#"{"rules": [
            {"id": "bulk", "severity": "high",
             "kind": {"type": "denied-bulk", "threshold": 5, "window_minutes": 3}},
            {"id": "blålys", "enabled": false, "severity": "low", "kind": {"type": "emergency"}},
            {"id": "naboen", "severity": "medium", "kind": {"type": "same-address"}}
        ]}"#;
        let set = RuleSet::from_json(json).unwrap();
        assert_eq!(
            set.rules[0].kind,
            RuleKind::DeniedBulk {
                threshold: 5,
                window_minutes: 3
            }
        );
        assert!(!set.rules[1].enabled);
        assert!(set.rules[0].enabled);
        assert_eq!(
            set.rules[2].kind,
            RuleKind::SameAddress {
                cooldown_minutes: 1440
            }
        );
        let e: Observed = serde_json::from_str(
            r#"{"seq": 1, "at": 0, "local_weekday": 0, "local_minute": 0, "actor": null,
                "actor_kind": null, "patient": null, "action": "login.failure",
                "outcome": "denied", "basis": null}"#,
        )
        .unwrap();
        assert_eq!(e.facts, Facts::default());
    }

    /// The error of the default set with rule `id`'s kind replaced.
    fn invalid(id: &str, kind: RuleKind) -> String {
        with_rule(id, kind).validate().unwrap_err().to_string()
    }

    #[test]
    fn invalid_configs_name_the_rule_and_field() {
        let e = invalid(
            "denied-bulk",
            RuleKind::DeniedBulk {
                threshold: 0,
                window_minutes: 10,
            },
        );
        assert_eq!(
            e,
            "rule `denied-bulk`: `threshold` must be at least 1 (is 0)"
        );
        let e = invalid(
            "denied-bulk",
            RuleKind::DeniedBulk {
                threshold: 1,
                window_minutes: 10_081,
            },
        );
        assert!(
            e.contains("`denied-bulk`") && e.contains("`window_minutes`"),
            "{e}"
        );
        let e = invalid(
            "same-surname",
            RuleKind::SameSurname {
                cooldown_minutes: 0,
            },
        );
        assert!(
            e.contains("`same-surname`") && e.contains("`cooldown_minutes`"),
            "{e}"
        );
        let e = invalid(
            "unusual-volume",
            RuleKind::UnusualVolume {
                distinct_patients: 0,
                window_minutes: 60,
            },
        );
        assert!(e.contains("`distinct_patients`"), "{e}");
        let hours = |start, end| RuleKind::OffHours {
            workday_start_minute: start,
            workday_end_minute: end,
            weekends_off_hours: false,
            threshold: 1,
            window_minutes: 1,
        };
        let e = invalid("off-hours", hours(600, 1440));
        assert!(
            e.contains("`off-hours`") && e.contains("`workday_end_minute`"),
            "{e}"
        );
        let e = invalid("off-hours", hours(1440, 100));
        assert!(e.contains("`workday_start_minute`"), "{e}");
        let e = invalid("off-hours", hours(600, 600));
        assert!(e.contains("`workday_start_minute` must be before"), "{e}");
        invalid_ids();
    }

    fn invalid_ids() {
        let mut set = RuleSet::default();
        set.rules[3].id = " ".to_string();
        assert_eq!(set.validate(), Err(RuleError::EmptyId { index: 3 }));
        let mut set = RuleSet::default();
        set.rules[3].id = "emergency".to_string();
        assert_eq!(
            set.validate().unwrap_err().to_string(),
            "rule `emergency`: `id` is used by more than one rule"
        );
    }

    #[test]
    fn from_json_validates_and_names_the_rule_of_a_parse_error() {
        let json = |kind: &str| {
            format!(
                r#"{{"rules": [{{"id": "x", "severity": "low", "kind": {{"type": "emergency"}}}},
                {{"id": "bulk", "severity": "low", "kind": {kind}}}]}}"#
            )
        };
        let e = RuleSet::from_json(&json(
            r#"{"type": "denied-bulk", "threshhold": 3, "window_minutes": 3}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("rules[1] (rule `bulk`): unknown field `threshhold`"),
            "{e}"
        );
        let e = RuleSet::from_json(&json(r#"{"type": "denied-bulk", "threshold": 3}"#))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`bulk`") && e.contains("`window_minutes`"),
            "{e}"
        );
        let e = RuleSet::from_json(&json(r#"{"type": "denied-lots"}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`bulk`") && e.contains("denied-lots"), "{e}");
        let e = RuleSet::from_json(&json(
            r#"{"type": "denied-bulk", "threshold": 0, "window_minutes": 3}"#,
        ))
        .unwrap_err();
        assert!(
            matches!(e, RuleError::Invalid { ref rule, field: "threshold", .. } if rule == "bulk")
        );
        assert!(matches!(RuleSet::from_json("{"), Err(RuleError::Json(_))));
        assert!(matches!(
            RuleSet::from_json(r#"{"rules": [], "extra": 1}"#),
            Err(RuleError::Json(_))
        ));
    }

    // A generated day: staff reading their patients in working hours, plus a patient reading
    // their own record and an integration syncing every patient. Then one anomaly injected.

    const STAFF: usize = 6;
    const PATIENTS: usize = 40;

    /// One normal access: (staff, patient, minute of the working day, second, action, jitter).
    fn normal_access() -> impl Strategy<Value = (usize, usize, i64, i64, usize, i64)> {
        (
            0..STAFF,
            0..PATIENTS,
            8 * 60..16 * 60i64,
            0..60i64,
            0..DATA_ACTIONS.len(),
            0..4i64,
        )
    }

    fn staff(i: usize) -> String {
        format!("staff-{i}")
    }

    /// An event, whether it was injected, and how many seconds its clock is behind.
    type Entry = (Observed, bool, i64);

    /// The normal day, each event marked false (not injected).
    fn normal_day(accesses: &[(usize, usize, i64, i64, usize, i64)]) -> Vec<Entry> {
        let mut day: Vec<Entry> = accesses
            .iter()
            .map(|&(s, p, minute, second, action, jitter)| {
                let mut e = read(0, minute, &staff(s), &format!("patient-{p}"));
                e.at += second;
                e.action = DATA_ACTIONS[action].to_string();
                (e, false, jitter)
            })
            .collect();
        // A patient reads their own record (the caller may well set the facts).
        let mut own = with_facts(read(0, 9 * 60, "patient-1", "patient-1"), |f| {
            f.own_record = true;
            f.same_surname = true;
            f.same_address = true;
        });
        own.actor_kind = Some("patient".to_string());
        own.basis = Some("own-record".to_string());
        day.push((own, false, 0));
        // An integration syncs every patient and an archive, twice, at night.
        for round in 0..2 {
            for p in 0..PATIENTS * 3 {
                let id = match p.checked_sub(PATIENTS) {
                    None => format!("patient-{p}"),
                    Some(a) => format!("archive-{a}"),
                };
                let mut e = read(0, 2 * 60 + round, "integration-1", &id);
                e.actor_kind = Some("integration".to_string());
                e.basis = Some("integration".to_string());
                day.push((e, false, 0));
            }
        }
        day
    }

    #[derive(Debug, Clone, Copy)]
    enum Anomaly {
        DeniedBulk,
        Emergency,
        SameSurname,
        SameAddress,
        OwnRecord,
        Colleague,
        RelationshipEnded,
        Volume,
        OffHours,
    }

    const ANOMALIES: [(Anomaly, &str); 9] = [
        (Anomaly::DeniedBulk, "denied-bulk"),
        (Anomaly::Emergency, "emergency"),
        (Anomaly::SameSurname, "same-surname"),
        (Anomaly::SameAddress, "same-address"),
        (Anomaly::OwnRecord, "own-record"),
        (Anomaly::Colleague, "colleague-record"),
        (Anomaly::RelationshipEnded, "after-relationship-ended"),
        (Anomaly::Volume, "unusual-volume"),
        (Anomaly::OffHours, "off-hours"),
    ];

    /// The injected events (marked true) by `actor` from `minute`, plus events that follow
    /// them but must not be in the finding (marked false).
    fn inject(anomaly: Anomaly, actor: &str, minute: i64, patient: &str) -> Vec<(Observed, bool)> {
        let one = |f: fn(&mut Facts)| vec![(with_facts(read(0, minute, actor, patient), f), true)];
        match anomaly {
            Anomaly::DeniedBulk => (0..10)
                .map(|i| {
                    let mut e = denied(0, minute, actor, &format!("patient-{i}"));
                    e.at += i * 50;
                    (e, true)
                })
                .collect(),
            Anomaly::Emergency => {
                let open = Observed {
                    action: EMERGENCY_OPENED.to_string(),
                    basis: Some("emergency".to_string()),
                    ..read(0, minute, actor, "stranger")
                };
                let mut out = vec![(open, true)];
                out.extend((1..4).map(|i| {
                    let e = Observed {
                        basis: Some("emergency".to_string()),
                        ..read(0, minute + i, actor, "stranger")
                    };
                    (e, false)
                }));
                out
            }
            Anomaly::SameSurname => one(|f| f.same_surname = true),
            Anomaly::SameAddress => one(|f| f.same_address = true),
            Anomaly::OwnRecord => vec![(
                with_facts(read(0, minute, actor, actor), |f| f.own_record = true),
                true,
            )],
            Anomaly::Colleague => one(|f| f.colleague = true),
            Anomaly::RelationshipEnded => vec![(
                with_facts(denied(0, minute, actor, patient), |f| {
                    f.relationship_ended = true
                }),
                true,
            )],
            Anomaly::Volume => (0..50)
                .map(|i| (read(0, minute + i, actor, &format!("other-{i}")), true))
                .collect(),
            Anomaly::OffHours => (0..20)
                .map(|i| {
                    (
                        read(0, minute + 2 * i, actor, &format!("patient-{}", i % 5)),
                        true,
                    )
                })
                .collect(),
        }
    }

    /// Merges by time (stably), numbers the events in order and only then sets their clocks
    /// back by their jitter, so `at` goes slightly backwards now and then. Returns the events
    /// and the injected seqs.
    fn number(mut events: Vec<Entry>) -> (Vec<Observed>, Vec<u64>) {
        events.sort_by_key(|(e, _, _)| e.at);
        let mut injected = Vec::new();
        let events = events
            .into_iter()
            .enumerate()
            .map(|(seq, (mut e, mark, jitter))| {
                e.seq = seq as u64;
                e.at -= jitter;
                if mark {
                    injected.push(e.seq);
                }
                e
            })
            .collect();
        (events, injected)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_normal_day_has_no_findings(accesses in prop::collection::vec(normal_access(), 0..400)) {
            let (events, _) = number(normal_day(&accesses));
            prop_assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
            let found = run(&events);
            prop_assert!(found.is_empty(), "{found:?}");
        }

        #[test]
        fn an_injected_anomaly_fires_its_rule(
            accesses in prop::collection::vec(normal_access(), 0..400),
            which in 0..ANOMALIES.len(),
            actor in 0..STAFF,
            minute in 8 * 60..15 * 60i64,
            night in prop_oneof![0..5 * 60i64, 22 * 60 + 5..23 * 60 + 20i64],
            patient in 0..PATIENTS,
        ) {
            let (anomaly, rule) = ANOMALIES[which];
            let actor_id = staff(actor);
            let mut day = normal_day(&accesses);
            let start = match anomaly {
                Anomaly::OffHours => night,
                _ => minute,
            };
            if let Anomaly::Volume = anomaly {
                // The burst is the actor's hour: their ordinary work around it is left out, so
                // every injected access is in the window that fires.
                let from = read(0, start - 61, "", "").at;
                let to = read(0, start + 51, "", "").at;
                day.retain(|(e, _, _)| {
                    e.actor.as_deref() != Some(actor_id.as_str()) || e.at < from || e.at > to
                });
            }
            let injection = inject(anomaly, &actor_id, start, &format!("patient-{patient}"));
            day.extend(injection.into_iter().map(|(e, mark)| (e, mark, 0)));
            let (events, injected) = number(day);
            let found = run(&events);
            let fired: std::collections::BTreeSet<&str> = found.iter().map(|f| f.rule.as_str()).collect();
            prop_assert_eq!(fired.into_iter().collect::<Vec<_>>(), vec![rule], "{:?}", found);
            let first = &found[0];
            prop_assert_eq!(first.actor.as_deref(), Some(actor_id.as_str()));
            for seq in &injected {
                prop_assert!(first.seqs.contains(seq), "{seq} not in {:?}", first.seqs);
            }
        }
    }
}
