use super::*;

fn engine() -> (Engine, TenantPolicies) {
    let e = Engine::new().unwrap_or_else(|err| unreachable!("{err}"));
    let p = e
        .compile(DEFAULT_TENANT_POLICIES)
        .unwrap_or_else(|err| unreachable!("{err}"));
    (e, p)
}

fn staff(role: &str) -> Principal {
    Principal {
        id: format!("u-{role}"),
        tenant: "nordby".into(),
        kind: "staff".into(),
        roles: vec![role.into()],
    }
}

fn record(category: &str) -> Record {
    Record {
        tenant: "nordby".into(),
        resource_type: "Observation".into(),
        category: category.into(),
        withheld: false,
        restricted: false,
    }
}

fn related() -> Facts {
    Facts {
        care_relationship: true,
        ..Facts::default()
    }
}

#[test]
fn a_physician_with_a_care_relationship_reads() {
    let (e, p) = engine();
    let d = e.decide(
        &p,
        &staff("physician"),
        Action::Read,
        &record("clinical-notes"),
        &related(),
    );
    assert!(d.permitted, "{d:?}");
    assert_eq!(d.policies, ["tenant.physician"]);
}

#[test]
fn without_a_care_relationship_staff_are_refused_and_offered_emergency_access() {
    let (e, p) = engine();
    let d = e.decide(
        &p,
        &staff("physician"),
        Action::Read,
        &record("clinical-notes"),
        &Facts::default(),
    );
    assert!(!d.permitted);
    assert_eq!(d.reason, "you have no care relationship with this patient");
    assert!(e.emergency_would_permit(
        &p,
        &staff("physician"),
        Action::Read,
        &record("clinical-notes"),
        &Facts::default()
    ));
    assert!(
        !e.emergency_would_permit(
            &p,
            &staff("physician"),
            Action::Delete,
            &record("clinical-notes"),
            &Facts::default()
        ),
        "emergency access is for reading"
    );
    let blocked = Facts {
        blocked: true,
        ..Facts::default()
    };
    assert!(
        !e.emergency_would_permit(
            &p,
            &staff("physician"),
            Action::Read,
            &record("clinical-notes"),
            &blocked
        ),
        "the tenant does not let emergency override this block"
    );
}

#[test]
fn care_assistants_do_not_read_mental_health_notes() {
    let (e, p) = engine();
    let d = e.decide(
        &p,
        &staff("care_assistant"),
        Action::Read,
        &record("mental-health"),
        &related(),
    );
    assert!(!d.permitted);
    assert_eq!(d.reason, "your role does not give access to mental-health");
    assert!(
        e.decide(
            &p,
            &staff("care_assistant"),
            Action::Read,
            &record("measurements"),
            &related()
        )
        .permitted
    );
}

#[test]
fn secretaries_see_demographics_and_appointments_only() {
    let (e, p) = engine();
    let sec = staff("secretary");
    assert!(
        e.decide(&p, &sec, Action::Read, &record("appointments"), &related())
            .permitted
    );
    assert!(
        e.decide(&p, &sec, Action::Read, &record("demographics"), &related())
            .permitted
    );
    assert!(
        !e.decide(&p, &sec, Action::Read, &record("measurements"), &related())
            .permitted
    );
}

#[test]
fn forbids_name_their_policy_and_reason() {
    let (e, p) = engine();
    let d = e.decide(
        &p,
        &staff("physician"),
        Action::Read,
        &record("clinical-notes"),
        &Facts {
            excluded: true,
            ..related()
        },
    );
    assert!(!d.permitted);
    assert_eq!(d.policies, ["platform.exclusion"]);
    assert_eq!(
        d.reason,
        "you have been excluded from this patient's record"
    );
    let mut other = record("clinical-notes");
    other.tenant = "sorby".into();
    let d = e.decide(&p, &staff("physician"), Action::Read, &other, &related());
    assert_eq!(d.policies, ["platform.tenant-isolation"]);
}

#[test]
fn a_block_yields_to_emergency_access_only_where_the_tenant_allows() {
    let (e, p) = engine();
    let blocked = Facts {
        blocked: true,
        ..related()
    };
    assert!(
        !e.decide(
            &p,
            &staff("nurse"),
            Action::Read,
            &record("measurements"),
            &blocked
        )
        .permitted
    );
    let em = Facts {
        emergency: true,
        ..blocked.clone()
    };
    assert!(
        !e.decide(
            &p,
            &staff("nurse"),
            Action::Read,
            &record("measurements"),
            &em
        )
        .permitted
    );
    let em_ok = Facts {
        emergency_overrides_block: true,
        ..em
    };
    assert!(
        e.decide(
            &p,
            &staff("nurse"),
            Action::Read,
            &record("measurements"),
            &em_ok
        )
        .permitted
    );
}

#[test]
fn a_restricted_record_is_read_by_the_patient_and_under_emergency_access_only() {
    let (e, p) = engine();
    let mut r = record("clinical-notes");
    r.restricted = true;
    let d = e.decide(&p, &staff("physician"), Action::Read, &r, &related());
    assert!(!d.permitted);
    assert_eq!(d.policies, ["platform.restricted"]);
    assert!(
        e.emergency_would_permit(&p, &staff("physician"), Action::Read, &r, &related()),
        "emergency access is the way in"
    );
    let emergency = Facts {
        emergency: true,
        ..related()
    };
    assert!(
        e.decide(&p, &staff("physician"), Action::Read, &r, &emergency)
            .permitted
    );
    for a in [Action::Update, Action::Delete, Action::Create] {
        assert!(
            !e.decide(&p, &staff("physician"), a, &r, &emergency)
                .permitted,
            "{a:?}"
        );
    }
    let pat = Principal {
        id: "pat".into(),
        tenant: "nordby".into(),
        kind: "patient".into(),
        roles: vec![],
    };
    let own = Facts {
        own_record: true,
        ..Facts::default()
    };
    assert!(e.decide(&p, &pat, Action::Read, &r, &own).permitted);
    assert!(!e.decide(&p, &pat, Action::Update, &r, &own).permitted);
    // The integration, too, stops processing it.
    let integration = Principal {
        roles: vec!["integration".into()],
        ..staff("integration")
    };
    assert!(
        !e.decide(&p, &integration, Action::Read, &r, &Facts::default())
            .permitted
    );
}

#[test]
fn patients_ask_for_corrections_of_their_own_record_as_tasks() {
    let (e, p) = engine();
    let pat = Principal {
        id: "pat".into(),
        tenant: "nordby".into(),
        kind: "patient".into(),
        roles: vec![],
    };
    let own = Facts {
        own_record: true,
        ..Facts::default()
    };
    let mut task = record("clinical-notes");
    task.resource_type = "Task".into();
    let d = e.decide(&p, &pat, Action::Create, &task, &own);
    assert!(d.permitted, "{d:?}");
    assert_eq!(d.policies, ["tenant.own-request"]);
    assert!(!e.decide(&p, &pat, Action::Update, &task, &own).permitted);
    assert!(
        !e.decide(&p, &pat, Action::Create, &task, &Facts::default())
            .permitted
    );
    assert!(
        !e.decide(&p, &pat, Action::Create, &record("clinical-notes"), &own)
            .permitted,
        "only requests, not records"
    );
}

#[test]
fn patients_read_their_own_record_but_not_what_is_withheld() {
    let (e, p) = engine();
    let pat = Principal {
        id: "p1".into(),
        tenant: "nordby".into(),
        kind: "patient".into(),
        roles: vec![],
    };
    let own = Facts {
        own_record: true,
        ..Facts::default()
    };
    assert!(
        e.decide(&p, &pat, Action::Read, &record("mental-health"), &own)
            .permitted
    );
    assert!(
        !e.decide(&p, &pat, Action::Update, &record("mental-health"), &own)
            .permitted
    );
    let mut withheld = record("clinical-notes");
    withheld.withheld = true;
    assert!(!e.decide(&p, &pat, Action::Read, &withheld, &own).permitted);
    let d = e.decide(
        &p,
        &pat,
        Action::Read,
        &record("measurements"),
        &Facts::default(),
    );
    assert_eq!(d.reason, "this record is not yours");
}

#[test]
fn relatives_read_only_what_consent_covers() {
    let (e, p) = engine();
    let rel = Principal {
        id: "r1".into(),
        tenant: "nordby".into(),
        kind: "relative".into(),
        roles: vec![],
    };
    let f = Facts {
        relative_categories: vec!["appointments".into(), "messages".into()],
        ..Facts::default()
    };
    assert!(
        e.decide(&p, &rel, Action::Read, &record("appointments"), &f)
            .permitted
    );
    assert!(
        !e.decide(&p, &rel, Action::Read, &record("measurements"), &f)
            .permitted
    );
}

#[test]
fn operators_see_nothing_without_support_access() {
    let (e, p) = engine();
    let op = Principal {
        id: "op".into(),
        tenant: "nordby".into(),
        kind: "operator".into(),
        roles: vec!["physician".into()],
    };
    let d = e.decide(&p, &op, Action::Read, &record("demographics"), &related());
    assert_eq!(d.policies, ["platform.operator-denied"]);
}

#[test]
fn tenant_policies_are_validated_and_cannot_touch_the_baseline() {
    let (e, _) = engine();
    assert!(matches!(
        e.compile("permit(principal, action, resource) when { resource.nonsense };"),
        Err(AuthzError::MissingId(_))
    ));
    let bad = "@id(\"t.x\") permit(principal, action, resource) when { resource.nonsense == 1 };";
    assert!(
        matches!(e.compile(bad), Err(AuthzError::Invalid(_))),
        "{:?}",
        e.compile(bad).err()
    );
    let reserved = "@id(\"platform.x\") permit(principal, action, resource);";
    assert!(matches!(
        e.compile(reserved),
        Err(AuthzError::ReservedId(_))
    ));
    assert!(matches!(e.compile("permit(("), Err(AuthzError::Parse(_))));
    // A tenant's permit-everything still cannot cross tenants or beat an exclusion.
    let open = e
        .compile("@id(\"t.all\") permit(principal, action, resource);")
        .unwrap_or_else(|err| unreachable!("{err}"));
    let mut other = record("demographics");
    other.tenant = "sorby".into();
    assert!(
        !e.decide(
            &open,
            &staff("nurse"),
            Action::Read,
            &other,
            &Facts::default()
        )
        .permitted
    );
    assert!(
        !e.decide(
            &open,
            &staff("nurse"),
            Action::Read,
            &record("demographics"),
            &Facts {
                excluded: true,
                ..Facts::default()
            }
        )
        .permitted
    );
}

#[test]
fn problems_in_policy_text_are_located_by_line_and_column() {
    let (e, _) = engine();
    assert_eq!(e.locate_problem(DEFAULT_TENANT_POLICIES), None);
    let parse = "@id(\"t.a\")\npermit(principal, action, resource);\n\n@id(\"t.b\")\npermit(principal, action, resource) when { ( };\n";
    assert_eq!(e.locate_problem(parse).map(|(l, _)| l), Some(5));
    let schema = "@id(\"t.a\")\npermit(principal, action, resource);\n@id(\"t.x\")\npermit(principal, action, resource)\n  when { resource.nonsense == 1 };\n";
    let at = e.locate_problem(schema);
    assert!(matches!(at, Some((4 | 5, _))), "{at:?}");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [&str; 4] = ["staff", "patient", "relative", "operator"];
    const ROLES: [&str; 6] = [
        "physician",
        "nurse",
        "care_assistant",
        "secretary",
        "security_officer",
        "tenant_admin",
    ];
    const CATEGORIES: [&str; 6] = [
        "demographics",
        "measurements",
        "clinical-notes",
        "mental-health",
        "sexual-health",
        "directory",
    ];

    fn principal() -> impl Strategy<Value = Principal> {
        (
            0usize..2,
            0usize..4,
            proptest::collection::vec(0usize..6, 0..3),
        )
            .prop_map(|(t, k, roles)| Principal {
                id: "u".into(),
                tenant: ["nordby", "sorby"][t].into(),
                kind: KINDS[k].into(),
                roles: roles.into_iter().map(|r| ROLES[r].to_string()).collect(),
            })
    }

    fn rec() -> impl Strategy<Value = Record> {
        (0usize..2, 0usize..6, any::<bool>(), any::<bool>()).prop_map(|(t, c, w, r)| Record {
            tenant: ["nordby", "sorby"][t].into(),
            resource_type: "Observation".into(),
            category: CATEGORIES[c].into(),
            withheld: w,
            restricted: r,
        })
    }

    fn facts() -> impl Strategy<Value = Facts> {
        (
            proptest::collection::vec(any::<bool>(), 9),
            proptest::collection::vec(0usize..6, 0..3),
        )
            .prop_map(|(b, cats)| Facts {
                care_relationship: b[0],
                own_record: b[1],
                relative_categories: cats
                    .into_iter()
                    .map(|c| CATEGORIES[c].to_string())
                    .collect(),
                emergency: b[2],
                emergency_overrides_block: b[3],
                blocked: b[4],
                excluded: b[5],
                granted: b[6],
                support_access: b[7],
                no_patient: b[8],
                registration_only: false,
            })
    }

    fn action() -> impl Strategy<Value = Action> {
        (0usize..6).prop_map(|i| Action::ALL[i])
    }

    fn engines() -> &'static (Engine, TenantPolicies, TenantPolicies) {
        static E: std::sync::OnceLock<(Engine, TenantPolicies, TenantPolicies)> =
            std::sync::OnceLock::new();
        E.get_or_init(|| {
            let e = Engine::new().unwrap_or_else(|err| unreachable!("{err}"));
            let d = e
                .compile(DEFAULT_TENANT_POLICIES)
                .unwrap_or_else(|err| unreachable!("{err}"));
            // A careless tenant that permits everything: the baseline must still hold.
            let open = e
                .compile("@id(\"t.all\") permit(principal, action, resource);")
                .unwrap_or_else(|err| unreachable!("{err}"));
            (e, d, open)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_cross_tenant_permit_ever(p in principal(), r in rec(), f in facts(), a in action(), open in any::<bool>()) {
            let (e, d, o) = engines();
            let pol = if open { o } else { d };
            if p.tenant != r.tenant {
                prop_assert!(!e.decide(pol, &p, a, &r, &f).permitted);
            }
        }

        #[test]
        fn a_restricted_record_is_never_changed_and_read_only_by_the_exceptions(p in principal(), mut r in rec(), f in facts(), a in action(), open in any::<bool>()) {
            let (e, d, o) = engines();
            r.restricted = true;
            if e.decide(if open { o } else { d }, &p, a, &r, &f).permitted {
                prop_assert!(a.is_read());
                prop_assert!(
                    (p.kind == "patient" && f.own_record) || (p.kind == "staff" && f.emergency)
                );
            }
        }

        #[test]
        fn an_exclusion_always_wins(p in principal(), r in rec(), mut f in facts(), a in action(), open in any::<bool>()) {
            let (e, d, o) = engines();
            f.excluded = true;
            let pol = if open { o } else { d };
            prop_assert!(!e.decide(pol, &p, a, &r, &f).permitted);
        }

        #[test]
        fn a_block_wins_except_by_emergency_where_allowed(p in principal(), r in rec(), mut f in facts(), a in action(), open in any::<bool>()) {
            let (e, d, o) = engines();
            f.blocked = true;
            let permitted = e.decide(if open { o } else { d }, &p, a, &r, &f).permitted;
            if permitted {
                prop_assert!(f.emergency && f.emergency_overrides_block);
            }
        }

        #[test]
        fn staff_without_any_basis_are_refused(p in principal(), r in rec(), mut f in facts(), a in action()) {
            // An expired or future relationship reaches the engine as care_relationship = false.
            let (e, d, _) = engines();
            f.care_relationship = false;
            f.emergency = false;
            f.granted = false;
            f.no_patient = false;
            if p.kind == "staff" {
                prop_assert!(!e.decide(d, &p, a, &r, &f).permitted);
            }
        }

        #[test]
        fn missing_facts_deny(p in principal(), r in rec(), a in action()) {
            let (e, d, _) = engines();
            prop_assert!(!e.decide(d, &p, a, &r, &Facts::default()).permitted);
        }

        #[test]
        fn decisions_name_a_policy_when_permitted(p in principal(), r in rec(), f in facts(), a in action()) {
            let (e, d, _) = engines();
            let dec = e.decide(d, &p, a, &r, &f);
            if dec.permitted {
                prop_assert!(!dec.policies.is_empty());
            }
            prop_assert!(!dec.reason.is_empty());
        }
    }

    // --- the whole path: random rules of the record system → Knowledge → Facts → decision ---

    use time::{Duration, OffsetDateTime};
    const NOW: OffsetDateTime = time::macros::datetime!(2026-06-01 12:00 UTC);
    const PEOPLE: [&str; 3] = ["u", "v", "w"];
    const PATIENTS: [&str; 3] = ["p1", "p2", "u"];
    const UNITS: [&str; 2] = ["night", "day"];

    /// A period relative to now: past, current, future or open-ended.
    fn span() -> impl Strategy<Value = tillit_core::Period> {
        (-30i64..30, proptest::option::of(1i64..40)).prop_map(|(from, len)| {
            let start = NOW + Duration::days(from);
            tillit_core::Period::new(start, len.map(|l| start + Duration::days(l)))
                .unwrap_or_else(|e| unreachable!("{e}"))
        })
    }

    fn party() -> impl Strategy<Value = Party> {
        prop_oneof![
            (0usize..3).prop_map(|i| Party::Person(PEOPLE[i].into())),
            (0usize..2).prop_map(|i| Party::OrgUnit(UNITS[i].into())),
            Just(Party::Everyone),
        ]
    }

    fn rule() -> impl Strategy<Value = AccessRule> {
        (
            0usize..5,
            party(),
            0usize..3,
            proptest::collection::vec(0usize..6, 0..3),
            span(),
        )
            .prop_map(|(k, party, p, cats, period)| AccessRule {
                kind: RuleKind::ALL[k],
                party,
                patient: PATIENTS[p].into(),
                categories: cats
                    .into_iter()
                    .map(|c| CATEGORIES[c].to_string())
                    .collect(),
                period,
            })
    }

    /// A caller, what the record system holds, and one request.
    #[derive(Debug, Clone)]
    struct World {
        principal: Principal,
        units: Vec<String>,
        rules: Vec<AccessRule>,
        emergency: Vec<String>,
        overrides: bool,
        patient: Option<String>,
        record: Record,
        action: Action,
        open_policies: bool,
    }

    impl World {
        fn knowledge(&self) -> Knowledge {
            Knowledge::new(
                &self.principal.id,
                &self.principal.kind,
                self.units.clone(),
                self.rules.clone(),
            )
            .with_emergency(self.emergency.clone())
            .with_emergency_overrides_block(self.overrides)
        }

        fn decide(&self) -> Decision {
            let (e, d, o) = engines();
            let facts = self
                .knowledge()
                .facts(self.patient.as_deref(), &self.record.category, NOW);
            e.decide(
                if self.open_policies { o } else { d },
                &self.principal,
                self.action,
                &self.record,
                &facts,
            )
        }

        /// Active rules of `kind` concerning the caller for this request's patient and category.
        fn active(&self, kind: RuleKind) -> bool {
            let Some(patient) = &self.patient else {
                return false;
            };
            // Blocks and grants are about staff; a patient or relative is never "blocked".
            if matches!(kind, RuleKind::Block | RuleKind::Grant) && self.principal.kind != "staff" {
                return false;
            }
            self.rules.iter().any(|r| {
                r.kind == kind
                    && &r.patient == patient
                    && r.period.contains(NOW)
                    && (r.categories.is_empty() || r.categories.contains(&self.record.category))
                    && match &r.party {
                        Party::Person(p) => *p == self.principal.id,
                        Party::OrgUnit(u) => self.units.contains(u),
                        Party::Everyone => {
                            kind == RuleKind::Block && self.principal.kind == "staff"
                        }
                    }
            })
        }
    }

    fn world() -> impl Strategy<Value = World> {
        (
            principal(),
            proptest::collection::vec(0usize..2, 0..2),
            proptest::collection::vec(rule(), 0..12),
            proptest::collection::vec(0usize..3, 0..2),
            any::<bool>(),
            proptest::option::weighted(0.9, 0usize..3),
            rec(),
            action(),
            any::<bool>(),
        )
            .prop_map(
                |(principal, units, rules, em, overrides, patient, record, action, open)| World {
                    principal,
                    units: units.into_iter().map(|u| UNITS[u].to_string()).collect(),
                    rules,
                    emergency: em.into_iter().map(|p| PATIENTS[p].to_string()).collect(),
                    overrides,
                    patient: patient.map(|p| PATIENTS[p].to_string()),
                    record,
                    action,
                    open_policies: open,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn from_rules_no_cross_tenant_permit_ever(w in world()) {
            if w.principal.tenant != w.record.tenant {
                prop_assert!(!w.decide().permitted);
            }
        }

        #[test]
        fn from_rules_an_active_exclusion_always_wins(w in world()) {
            if w.active(RuleKind::Exclusion) {
                prop_assert!(!w.decide().permitted);
            }
        }

        #[test]
        fn from_rules_an_active_block_wins_except_by_emergency_where_allowed(w in world()) {
            let blocked = w.active(RuleKind::Block);
            if blocked && w.decide().permitted {
                let emergency = w.patient.as_ref().is_some_and(|p| w.emergency.contains(p));
                prop_assert!(emergency && w.overrides);
            }
        }

        #[test]
        fn from_rules_expired_or_future_relationships_never_permit(mut w in world()) {
            // Staff whose only basis is relationships outside their period are refused.
            w.principal.kind = "staff".into();
            w.open_policies = false;
            w.emergency.clear();
            w.rules.retain(|r| r.kind != RuleKind::Grant);
            for r in &mut w.rules {
                if r.kind == RuleKind::Care && r.period.contains(NOW) {
                    r.period = tillit_core::Period::new(NOW - Duration::days(9), Some(NOW - Duration::days(1)))
                        .unwrap_or_else(|e| unreachable!("{e}"));
                }
            }
            w.principal.roles.retain(|r| r != "integration");
            if w.patient.is_some() {
                prop_assert!(!w.decide().permitted);
            }
        }

        #[test]
        fn from_rules_someone_elses_relationship_never_permits(mut w in world()) {
            w.principal.kind = "staff".into();
            w.open_policies = false;
            w.emergency.clear();
            w.units.clear();
            for r in &mut w.rules {
                r.party = Party::Person("somebody-else".into());
            }
            if w.patient.is_some() {
                prop_assert!(!w.decide().permitted);
            }
        }
    }
}
