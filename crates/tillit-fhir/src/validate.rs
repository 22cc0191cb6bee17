//! Validation of resources against the R4 structure definitions.
//!
//! The rules come from `data/r4-structure.json`, a compact table generated from the official
//! StructureDefinitions by `scripts/gen-fhir-defs.py`: each element's path, cardinality, types
//! and content reference, the regex of each primitive type and the name of every R4 resource
//! type. Checked: unknown elements, required elements, single vs. repeating, empty values and
//! nulls, choice types, primitive JSON types and formats, primitive extensions (`_birthDate`),
//! nested types, reference formats, codings, contained resources, and three trivial invariants
//! (ext-1, dom-2, dom-4). Not checked: other FHIRPath invariants, terminology bindings, and
//! the target types of references (`Observation.subject` → Patient, Group...): two official
//! examples break that rule and every official example must round-trip through the API.
//! Every problem is reported, each with its FHIRPath-style location (`Patient.name[0].given[1]`).
//!
//! Validation runs on every write, so the table is parsed once into an index (JSON property
//! name → element, per type and backbone element), and locations are kept as a chain of
//! borrowed segments on the stack and only turned into strings for a problem: a valid
//! resource costs no allocation beyond one scratch buffer.

use crate::outcome::{Issue, IssueType};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Validates a resource of a type Tillit knows (the served types, AuditEvent, Bundle and
/// OperationOutcome); `Ok` or every problem found.
pub fn validate(resource: &Value) -> Result<(), Vec<Issue>> {
    let defs = defs();
    let mut ctx = Ctx {
        defs,
        issues: Vec::new(),
        seen: Vec::new(),
    };
    match resource_type(resource) {
        Err(problem) => ctx.issues.push(Issue::error(IssueType::Structure, problem)),
        Ok(rt) => match (defs.resources.get(rt), resource.as_object()) {
            (Some(&node), Some(obj)) => ctx.object(node, obj, &Loc::root(rt), true),
            _ => ctx.issues.push(Issue::error(
                IssueType::NotSupported,
                if defs.resource_types.contains(rt) {
                    format!("resource type '{rt}' is not supported here")
                } else {
                    format!("'{rt}' is not an R4 resource type")
                },
            )),
        },
    }
    if ctx.issues.is_empty() {
        Ok(())
    } else {
        Err(ctx.issues)
    }
}

/// Whether `resource_type` is one the validator checks in full.
pub fn knows(resource_type: &str) -> bool {
    defs().resources.contains_key(resource_type)
}

fn resource_type(v: &Value) -> Result<&str, &'static str> {
    let Some(obj) = v.as_object() else {
        return Err("a resource must be a JSON object");
    };
    match obj.get("resourceType") {
        None => Err("the resource has no resourceType"),
        Some(Value::String(rt)) => Ok(rt),
        Some(_) => Err("resourceType must be a string"),
    }
}

// ---------------------------------------------------------------------------------------------
// The table, as generated, and the index built from it once.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Table {
    resource_types: Vec<String>,
    primitives: BTreeMap<String, Option<String>>,
    aliases: BTreeMap<String, String>,
    types: BTreeMap<String, TableType>,
}

#[derive(Deserialize)]
struct TableType {
    kind: String,
    elements: Vec<TableElement>,
}

#[derive(Deserialize)]
struct TableElement {
    p: String,
    min: u32,
    max: String,
    /// Type codes (`["dateTime", "Period"]` for `onset[x]`).
    t: Vec<String>,
    #[serde(default, rename = "ref")]
    content_ref: Option<String>,
}

/// The primitive datatypes, each checked by hand against its R4 regex: no regex engine is
/// needed for formats this small, and a hand check also knows the calendar (no 30 February).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primitive {
    Base64Binary,
    Boolean,
    Canonical,
    Code,
    Date,
    DateTime,
    Decimal,
    Id,
    Instant,
    Integer,
    Markdown,
    Oid,
    PositiveInt,
    String,
    Time,
    UnsignedInt,
    Uri,
    Url,
    Uuid,
    Xhtml,
}

impl Primitive {
    const ALL: [Primitive; 20] = [
        Primitive::Base64Binary,
        Primitive::Boolean,
        Primitive::Canonical,
        Primitive::Code,
        Primitive::Date,
        Primitive::DateTime,
        Primitive::Decimal,
        Primitive::Id,
        Primitive::Instant,
        Primitive::Integer,
        Primitive::Markdown,
        Primitive::Oid,
        Primitive::PositiveInt,
        Primitive::String,
        Primitive::Time,
        Primitive::UnsignedInt,
        Primitive::Uri,
        Primitive::Url,
        Primitive::Uuid,
        Primitive::Xhtml,
    ];

    fn name(self) -> &'static str {
        match self {
            Primitive::Base64Binary => "base64Binary",
            Primitive::Boolean => "boolean",
            Primitive::Canonical => "canonical",
            Primitive::Code => "code",
            Primitive::Date => "date",
            Primitive::DateTime => "dateTime",
            Primitive::Decimal => "decimal",
            Primitive::Id => "id",
            Primitive::Instant => "instant",
            Primitive::Integer => "integer",
            Primitive::Markdown => "markdown",
            Primitive::Oid => "oid",
            Primitive::PositiveInt => "positiveInt",
            Primitive::String => "string",
            Primitive::Time => "time",
            Primitive::UnsignedInt => "unsignedInt",
            Primitive::Uri => "uri",
            Primitive::Url => "url",
            Primitive::Uuid => "uuid",
            Primitive::Xhtml => "xhtml",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Primitive(Primitive),
    /// A complex datatype, a backbone element or a content reference: the node of its children.
    Node(usize),
    /// Any resource (`contained`, `Bundle.entry.resource`).
    Resource,
    /// A type the table uses but does not define; only a broken table has one (tests check).
    Undefined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Max {
    Zero,
    One,
    Many,
}

struct ElementDef {
    /// The last path segment, `value[x]` for a choice.
    name: Box<str>,
    min: u32,
    max: Max,
    choice: bool,
    types: Box<[Kind]>,
}

/// What a JSON property name means in one node.
struct Key {
    element: usize,
    /// Which of the element's types (for a choice, the one the name chose).
    ty: usize,
    /// `_status`, the id and extensions of the primitive `status`.
    sibling: bool,
    /// The value's property name (`valueQuantity`, `status`): the FHIRPath name of both halves.
    name: Box<str>,
    /// The extension sibling's property name (`_status`), for primitives.
    sibling_name: Box<str>,
}

#[derive(Default)]
struct Node {
    elements: Vec<ElementDef>,
    keys: HashMap<Box<str>, Key>,
}

struct Defs {
    nodes: Vec<Node>,
    /// Resource types checked in full → node.
    resources: HashMap<Box<str>, usize>,
    /// Every R4 resource type name (references and contained resources name them).
    resource_types: HashSet<Box<str>>,
    reference: Option<usize>,
    coding: Option<usize>,
    extension: Option<usize>,
    /// Element: the shape of a primitive's extension sibling.
    element: Option<usize>,
    /// The primitive regexes of the table (the hand-written checks must match them; tests).
    #[cfg_attr(not(test), allow(dead_code))]
    regexes: BTreeMap<String, Option<String>>,
    /// What the table names but does not define; empty unless it is broken (tests check).
    #[cfg_attr(not(test), allow(dead_code))]
    faults: Vec<String>,
}

fn defs() -> &'static Defs {
    static DEFS: OnceLock<Defs> = OnceLock::new();
    DEFS.get_or_init(|| {
        match serde_json::from_str::<Table>(include_str!("../data/r4-structure.json")) {
            Ok(table) => Defs::build(table),
            // Only a broken build can get here, and the tests fail on it: with no definitions,
            // every resource is refused as unsupported rather than accepted unchecked.
            Err(e) => Defs::broken(format!("data/r4-structure.json: {e}")),
        }
    })
}

impl Defs {
    fn broken(fault: String) -> Self {
        Defs {
            nodes: Vec::new(),
            resources: HashMap::new(),
            resource_types: HashSet::new(),
            reference: None,
            coding: None,
            extension: None,
            element: None,
            regexes: BTreeMap::new(),
            faults: vec![fault],
        }
    }

    fn build(table: Table) -> Self {
        let mut faults = Vec::new();
        // Every type and every path with children gets a node, before any element refers to one.
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (name, t) in &table.types {
            let next = by_name.len();
            by_name.entry(name.clone()).or_insert(next);
            for e in &t.elements {
                if let Some((parent, _)) = e.p.rsplit_once('.') {
                    let next = by_name.len();
                    by_name.entry(parent.to_string()).or_insert(next);
                }
            }
        }
        let mut nodes: Vec<Node> = (0..by_name.len()).map(|_| Node::default()).collect();
        let node_of = |name: &str| {
            let base = table.aliases.get(name).map_or(name, String::as_str);
            by_name.get(base).copied()
        };
        for t in table.types.values() {
            for e in &t.elements {
                let Some((parent, name)) = e.p.rsplit_once('.') else {
                    faults.push(format!("{}: not an element path", e.p));
                    continue;
                };
                let mut types = Vec::new();
                if let Some(target) = &e.content_ref {
                    let kind = node_of(target).map_or(Kind::Undefined, Kind::Node);
                    types.push((target.clone(), kind));
                }
                for code in &e.t {
                    let kind = if table.primitives.contains_key(code) {
                        Primitive::from_name(code).map_or(Kind::Undefined, Kind::Primitive)
                    } else if code == "Resource" {
                        Kind::Resource
                    } else if code == "BackboneElement" || code == "Element" {
                        // Children defined inline, under the element's own path.
                        node_of(&e.p).map_or(Kind::Undefined, Kind::Node)
                    } else {
                        node_of(code).map_or(Kind::Undefined, Kind::Node)
                    };
                    types.push((code.clone(), kind));
                }
                for (code, kind) in &types {
                    if *kind == Kind::Undefined {
                        faults.push(format!("{}: type {code} is not defined", e.p));
                    }
                }
                let Some(node) = by_name.get(parent).and_then(|&i| nodes.get_mut(i)) else {
                    continue;
                };
                let index = node.elements.len();
                let choice = name.strip_suffix("[x]");
                for (ty, (code, kind)) in types.iter().enumerate() {
                    let json_name = match choice {
                        Some(prefix) => format!("{prefix}{}", upper_first(code)),
                        None => name.to_string(),
                    };
                    let sibling_name = format!("_{json_name}");
                    // Element.id, Resource.id and Extension.url are System.String in R4, not
                    // FHIR primitives: they take no extensions.
                    let plain = name == "id" || e.p == "Extension.url";
                    if matches!(kind, Kind::Primitive(_)) && !plain {
                        node.keys.insert(
                            sibling_name.clone().into(),
                            Key {
                                element: index,
                                ty,
                                sibling: true,
                                name: json_name.clone().into(),
                                sibling_name: sibling_name.clone().into(),
                            },
                        );
                    }
                    node.keys.insert(
                        json_name.clone().into(),
                        Key {
                            element: index,
                            ty,
                            sibling: false,
                            name: json_name.into(),
                            sibling_name: sibling_name.into(),
                        },
                    );
                }
                node.elements.push(ElementDef {
                    name: name.into(),
                    min: e.min,
                    max: match e.max.as_str() {
                        "0" => Max::Zero,
                        "1" => Max::One,
                        _ => Max::Many,
                    },
                    choice: choice.is_some(),
                    types: types.into_iter().map(|(_, kind)| kind).collect(),
                });
            }
        }
        let resources = table
            .types
            .iter()
            .filter(|(_, t)| t.kind == "resource")
            .filter_map(|(name, _)| Some((name.as_str().into(), by_name.get(name).copied()?)))
            .collect();
        for name in table.primitives.keys() {
            if Primitive::from_name(name).is_none() {
                faults.push(format!("primitive {name} has no check"));
            }
        }
        Defs {
            reference: node_of("Reference"),
            coding: node_of("Coding"),
            extension: node_of("Extension"),
            element: node_of("Element"),
            nodes,
            resources,
            resource_types: table.resource_types.into_iter().map(Into::into).collect(),
            regexes: table.primitives,
            faults,
        }
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Locations, rendered only when there is something to say.

#[derive(Clone, Copy)]
enum Seg<'a> {
    Name(&'a str),
    Index(usize),
}

#[derive(Clone, Copy)]
struct Loc<'a> {
    up: Option<&'a Loc<'a>>,
    seg: Seg<'a>,
}

impl<'a> Loc<'a> {
    fn root(name: &'a str) -> Self {
        Loc {
            up: None,
            seg: Seg::Name(name),
        }
    }

    fn field<'b>(&'b self, name: &'b str) -> Loc<'b> {
        Loc {
            up: Some(self),
            seg: Seg::Name(name),
        }
    }

    fn index(&self, i: usize) -> Loc<'_> {
        Loc {
            up: Some(self),
            seg: Seg::Index(i),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        if let Some(up) = self.up {
            up.write(out);
        }
        match self.seg {
            Seg::Name(name) => {
                if self.up.is_some() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The walk.

struct Ctx {
    defs: &'static Defs,
    issues: Vec<Issue>,
    /// (element, type) of the properties of the objects being walked, innermost last: the
    /// required and one-choice checks of an object look at its own stretch, so no object needs
    /// a set of its own.
    seen: Vec<(usize, usize)>,
}

impl Ctx {
    fn err(&mut self, code: IssueType, at: &Loc<'_>, msg: impl Into<String>) {
        self.issues.push(Issue::error(code, msg).at(at.render()));
    }

    /// Checks the properties of `obj` against the children of `node`.
    fn object(&mut self, node: usize, obj: &Map<String, Value>, at: &Loc<'_>, resource: bool) {
        let defs = self.defs;
        let Some(def) = defs.nodes.get(node) else {
            return;
        };
        if obj.is_empty() {
            self.err(
                IssueType::Invalid,
                at,
                "an element must have a value or children, not be an empty object",
            );
            return;
        }
        let mark = self.seen.len();
        for (key, value) in obj {
            if resource && key == "resourceType" {
                continue;
            }
            let Some(k) = def.keys.get(key.as_str()) else {
                self.err(
                    IssueType::Structure,
                    &at.field(key),
                    format!("unknown element '{key}'"),
                );
                continue;
            };
            let Some(element) = def.elements.get(k.element) else {
                continue;
            };
            let Some(ty) = element.types.get(k.ty) else {
                continue;
            };
            // Both `status` and `_status` are located at `status`, as FHIRPath sees them.
            let here = at.field(&k.name);
            if element.max == Max::Zero {
                self.err(
                    IssueType::Structure,
                    &here,
                    format!("'{key}' is not allowed here"),
                );
                continue;
            }
            if element.choice
                && self
                    .seen
                    .get(mark..)
                    .unwrap_or_default()
                    .iter()
                    .any(|&(e, t)| e == k.element && t != k.ty)
            {
                self.err(
                    IssueType::Structure,
                    &here,
                    format!("only one type of {} may be given", element.name),
                );
            }
            self.seen.push((k.element, k.ty));
            if k.sibling {
                self.sibling(element, key, value, obj.get(&*k.name), &here);
            } else {
                self.property(element, *ty, k, value, obj, &here);
            }
        }
        for (i, element) in def.elements.iter().enumerate() {
            if element.min > 0
                && !self
                    .seen
                    .get(mark..)
                    .unwrap_or_default()
                    .iter()
                    .any(|&(e, _)| e == i)
            {
                self.err(
                    IssueType::Required,
                    &at.field(&element.name),
                    format!("'{}' is required", element.name),
                );
            }
        }
        self.seen.truncate(mark);
    }

    /// A property holding a value (or, for a repeating element, an array of values).
    fn property(
        &mut self,
        element: &ElementDef,
        ty: Kind,
        k: &Key,
        value: &Value,
        obj: &Map<String, Value>,
        at: &Loc<'_>,
    ) {
        let key = &*k.name;
        let Value::Array(items) = value else {
            if element.max == Max::Many {
                self.err(
                    IssueType::Structure,
                    at,
                    format!("'{key}' repeats: it must be an array"),
                );
            } else {
                self.value(element, ty, value, at);
            }
            return;
        };
        if element.max != Max::Many {
            self.err(
                IssueType::Structure,
                at,
                format!("'{key}' takes one value, not an array"),
            );
            return;
        }
        if items.is_empty() {
            self.err(IssueType::Invalid, at, "an array must not be empty");
            return;
        }
        for (i, item) in items.iter().enumerate() {
            let here = at.index(i);
            if item.is_null() && matches!(ty, Kind::Primitive(_)) {
                // A null holds the place of a value that only has extensions (`_given[i]`).
                let siblings = obj.get(&*k.sibling_name).and_then(Value::as_array);
                if !siblings
                    .and_then(|s| s.get(i))
                    .is_some_and(Value::is_object)
                {
                    self.err(
                        IssueType::Invalid,
                        &here,
                        format!(
                            "null stands for a value only when '{}[{i}]' holds its extensions",
                            k.sibling_name
                        ),
                    );
                }
                continue;
            }
            self.value(element, ty, item, &here);
        }
    }

    /// `_birthDate`: the id and extensions of a primitive (an array of them, or null, for a
    /// repeating one, lined up with the values).
    fn sibling(
        &mut self,
        element: &ElementDef,
        key: &str,
        value: &Value,
        values: Option<&Value>,
        at: &Loc<'_>,
    ) {
        let Some(node) = self.defs.element else {
            return;
        };
        match value {
            Value::Object(o) if element.max != Max::Many => self.object(node, o, at, false),
            Value::Array(items) if element.max == Max::Many => {
                if items.is_empty() {
                    self.err(IssueType::Invalid, at, "an array must not be empty");
                    return;
                }
                let values = values.and_then(Value::as_array);
                if values.is_some_and(|v| v.len() != items.len()) {
                    self.err(
                        IssueType::Structure,
                        at,
                        format!("'{key}' must line up with the values: as many entries"),
                    );
                }
                for (i, item) in items.iter().enumerate() {
                    let here = at.index(i);
                    match item {
                        Value::Object(o) => self.object(node, o, &here, false),
                        // Nothing to add to this value; a null value with it is reported
                        // with the values.
                        Value::Null if values.is_some() => {}
                        Value::Null => self.err(
                            IssueType::Invalid,
                            &here,
                            format!("'{key}' has only nulls here, and there are no values"),
                        ),
                        _ => self.err(
                            IssueType::Structure,
                            &here,
                            format!("'{key}' entries must be objects (id, extension) or null"),
                        ),
                    }
                }
            }
            Value::Array(_) => self.err(
                IssueType::Structure,
                at,
                format!("'{key}' takes one object, not an array"),
            ),
            Value::Object(_) => self.err(
                IssueType::Structure,
                at,
                format!("'{key}' repeats: it must be an array"),
            ),
            Value::Null => self.err(IssueType::Invalid, at, "null is not a value in FHIR JSON"),
            _ => self.err(
                IssueType::Structure,
                at,
                format!("'{key}' must be an object with id and extension"),
            ),
        }
    }

    /// One value of an element, of the type `ty`.
    fn value(&mut self, element: &ElementDef, ty: Kind, v: &Value, at: &Loc<'_>) {
        if v.is_null() {
            self.err(IssueType::Invalid, at, "null is not a value in FHIR JSON");
            return;
        }
        match ty {
            Kind::Primitive(p) => {
                if let Err(problem) = check_primitive(p, v) {
                    self.err(IssueType::Value, at, problem);
                }
            }
            Kind::Node(node) => {
                let Some(o) = v.as_object() else {
                    self.err(IssueType::Structure, at, "must be a JSON object");
                    return;
                };
                self.object(node, o, at, false);
                self.datatype_rules(node, o, at);
            }
            Kind::Resource => self.inner_resource(v, at, &*element.name == "contained"),
            Kind::Undefined => self.err(
                IssueType::Exception,
                at,
                "the definitions lack this element's type",
            ),
        }
    }

    /// Rules of particular datatypes beyond their structure.
    fn datatype_rules(&mut self, node: usize, o: &Map<String, Value>, at: &Loc<'_>) {
        let defs = self.defs;
        if Some(node) == defs.reference {
            if let Some(Value::String(r)) = o.get("reference")
                && let Err(problem) = check_reference(defs, r)
            {
                self.err(IssueType::Value, &at.field("reference"), problem);
            }
        } else if Some(node) == defs.coding {
            if let Some(Value::String(s)) = o.get("system")
                && !is_absolute_uri(s)
            {
                self.err(
                    IssueType::Value,
                    &at.field("system"),
                    format!(
                        "a code system must be an absolute URI, not '{}'",
                        excerpt(s)
                    ),
                );
            }
        } else if Some(node) == defs.extension {
            // ext-1: an extension has either a value or extensions, not both, not neither.
            let has_value = o
                .keys()
                .any(|k| k.starts_with("value") || k.starts_with("_value"));
            if has_value == o.contains_key("extension") {
                self.err(
                    IssueType::Invariant,
                    at,
                    "an extension has a value[x] or extensions: one of them, not both (ext-1)",
                );
            }
        }
    }

    /// A resource inside another (`contained`, `Bundle.entry.resource`).
    fn inner_resource(&mut self, v: &Value, at: &Loc<'_>, contained: bool) {
        let defs = self.defs;
        let rt = match resource_type(v) {
            Ok(rt) => rt,
            Err(problem) => {
                self.err(IssueType::Structure, at, problem);
                return;
            }
        };
        let Some(obj) = v.as_object() else {
            return;
        };
        if let Some(&node) = defs.resources.get(rt) {
            self.object(node, obj, at, true);
        } else if defs.resource_types.contains(rt) {
            // An R4 type outside the table (a contained Medication, a Location in a Bundle):
            // checked as far as every resource goes, its id.
            if let Some(id) = obj.get("id")
                && let Err(problem) = check_primitive(Primitive::Id, id)
            {
                self.err(IssueType::Value, &at.field("id"), problem);
            }
        } else {
            self.err(
                IssueType::Value,
                &at.field("resourceType"),
                format!("'{}' is not an R4 resource type", excerpt(rt)),
            );
            return;
        }
        if contained {
            // dom-2: no contained resources inside contained ones; dom-4: a contained resource
            // has no version or lastUpdated of its own.
            if obj.contains_key("contained") {
                self.err(
                    IssueType::Invariant,
                    &at.field("contained"),
                    "a contained resource cannot contain resources (dom-2)",
                );
            }
            if let Some(meta) = obj.get("meta").and_then(Value::as_object) {
                for key in ["versionId", "lastUpdated"] {
                    if meta.contains_key(key) {
                        self.err(
                            IssueType::Invariant,
                            &at.field("meta").field(key),
                            "a contained resource has no version or lastUpdated (dom-4)",
                        );
                    }
                }
            }
        }
    }
}

/// The first characters of a value, for a diagnostic.
fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        s.chars().take(MAX).chain("…".chars()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// References and URIs.

/// `Type/id`, `Type/id/_history/vid`, a conditional `Type?search` (transactions resolve it),
/// an absolute URL (http, https, urn:uuid, urn:oid) or `#id` (contained; `#` alone is the
/// containing resource). A relative reference must name an R4 resource type.
fn check_reference(defs: &Defs, r: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "'{}' is not a reference (Type/id, an absolute URL, urn:uuid:…, urn:oid:… or #id)",
            excerpt(r)
        )
    };
    if let Some(local) = r.strip_prefix('#') {
        return if local.is_empty() || is_id(local) {
            Ok(())
        } else {
            Err(bad())
        };
    }
    if let Some(rest) = r
        .strip_prefix("http://")
        .or_else(|| r.strip_prefix("https://"))
    {
        return if !rest.is_empty() && !r.chars().any(is_java_space) {
            Ok(())
        } else {
            Err(bad())
        };
    }
    if r.starts_with("urn:uuid:") {
        return if is_uuid(r) { Ok(()) } else { Err(bad()) };
    }
    if r.starts_with("urn:oid:") {
        return if is_oid(r) { Ok(()) } else { Err(bad()) };
    }
    let ty = match r.split_once('?') {
        Some((ty, query)) if !query.is_empty() => ty,
        Some(_) => return Err(bad()),
        None => {
            let mut parts = r.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(ty), Some(id), None, None) if is_id(id) => ty,
                (Some(ty), Some(id), Some("_history"), Some(version))
                    if is_id(id) && is_id(version) && parts.next().is_none() =>
                {
                    ty
                }
                _ => return Err(bad()),
            }
        }
    };
    if !defs.resource_types.contains(ty) {
        return Err(format!(
            "'{}' is not an R4 resource type, in reference '{}'",
            excerpt(ty),
            excerpt(r)
        ));
    }
    Ok(())
}

/// An absolute URI: a scheme (`http:`, `urn:`...) and something after it.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(is_java_space)
}

// ---------------------------------------------------------------------------------------------
// Primitives: JSON type, then the R4 regex, by hand.

fn check_primitive(p: Primitive, v: &Value) -> Result<(), String> {
    let name = p.name();
    match p {
        Primitive::Boolean => {
            return if v.is_boolean() {
                Ok(())
            } else {
                Err("a boolean must be JSON true or false".into())
            };
        }
        Primitive::Integer | Primitive::PositiveInt | Primitive::UnsignedInt => {
            // Without a fraction or exponent: `as_i64` refuses 1.0 and 1e2 (arbitrary
            // precision keeps the text; without it they are floats).
            let Some(n) = v.as_i64() else {
                return Err(if v.is_number() && (v.is_u64() || v.is_i64()) {
                    format!("a {name} must lie within 32 bits")
                } else {
                    format!("a {name} must be a JSON number without a fraction")
                });
            };
            let low = match p {
                Primitive::PositiveInt => 1,
                Primitive::UnsignedInt => 0,
                _ => i64::from(i32::MIN),
            };
            return if (low..=i64::from(i32::MAX)).contains(&n) {
                Ok(())
            } else {
                Err(format!("{n} is out of range for a {name}"))
            };
        }
        Primitive::Decimal => {
            return if v.is_number() {
                Ok(())
            } else {
                Err("a decimal must be a JSON number".into())
            };
        }
        _ => {}
    }
    let Some(s) = v.as_str() else {
        return Err(format!("a {name} must be a JSON string"));
    };
    if s.is_empty() {
        return Err(format!("a {name} must not be an empty string"));
    }
    let ok = match p {
        // [ \r\n\t\S]+: anything but the other whitespace controls.
        Primitive::String | Primitive::Markdown => !s.contains(['\u{0b}', '\u{0c}']),
        Primitive::Code => is_code(s),
        Primitive::Id => is_id(s),
        Primitive::Uri | Primitive::Url | Primitive::Canonical => !s.chars().any(is_java_space),
        Primitive::Oid => is_oid(s),
        Primitive::Uuid => is_uuid(s),
        Primitive::Base64Binary => is_base64(s),
        Primitive::Date => is_date(s),
        Primitive::DateTime => is_date_time(s),
        Primitive::Instant => is_instant(s),
        Primitive::Time => is_time(s),
        Primitive::Xhtml => is_xhtml_div(s),
        Primitive::Boolean
        | Primitive::Integer
        | Primitive::PositiveInt
        | Primitive::UnsignedInt
        | Primitive::Decimal => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("'{}' is not a valid {name}", excerpt(s)))
    }
}

/// `\s` of the R4 regexes (Java): space, tab, newline, vertical tab, form feed, return.
fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r')
}

/// `[^\s]+(\s[^\s]+)*`: no leading, trailing or doubled whitespace.
fn is_code(s: &str) -> bool {
    let mut previous_space = true;
    for c in s.chars() {
        let space = is_java_space(c);
        if space && previous_space {
            return false;
        }
        previous_space = space;
    }
    !previous_space
}

/// `[A-Za-z0-9\-\.]{1,64}`
fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`
fn is_oid(s: &str) -> bool {
    let Some(arcs) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut parts = arcs.split('.');
    let first_ok = matches!(parts.next(), Some("0" | "1" | "2"));
    let mut count = 0;
    let rest_ok = parts.all(|arc| {
        count += 1;
        arc == "0"
            || (arc.bytes().all(|b| b.is_ascii_digit()) && !arc.is_empty() && !arc.starts_with('0'))
    });
    first_ok && rest_ok && count >= 1
}

/// `urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
fn is_uuid(s: &str) -> bool {
    let Some(uuid) = s.strip_prefix("urn:uuid:") else {
        return false;
    };
    uuid.len() == 36
        && uuid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// `(\s*([0-9a-zA-Z\+/=]){4}\s*)+`, and real base64 besides: padding only at the end.
/// (Whitespace is allowed anywhere, as MIME line breaks do not always fall between quads.)
fn is_base64(s: &str) -> bool {
    let mut count = 0usize;
    let mut padding = 0usize;
    for b in s.bytes() {
        if matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            continue;
        }
        if b == b'=' {
            padding += 1;
        } else if padding > 0 || !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
            return false;
        }
        count += 1;
    }
    count > 0 && count.is_multiple_of(4) && padding <= 2
}

/// Narrative.div: an XHTML `div` element (its content is not parsed here).
fn is_xhtml_div(s: &str) -> bool {
    let t = s.trim();
    (t.starts_with("<div ") || t.starts_with("<div>")) && t.ends_with('>')
}

/// A cursor over the bytes of a date or time.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    /// Exactly `n` digits, as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        let mut value = 0u32;
        for &b in head {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(b - b'0');
        }
        self.rest = tail;
        Some(value)
    }

    fn eat(&mut self, b: u8) -> bool {
        match self.rest.split_first() {
            Some((&first, tail)) if first == b => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    fn done(&self) -> bool {
        self.rest.is_empty()
    }

    /// `YYYY[-MM[-DD]]`, year 0001–9999, a real day; whether the day is there.
    fn date(&mut self) -> Option<bool> {
        let year = self.digits(4).filter(|&y| y > 0)?;
        if !self.eat(b'-') {
            return Some(false);
        }
        let month = self.digits(2).filter(|m| (1..=12).contains(m))?;
        if !self.eat(b'-') {
            return Some(false);
        }
        self.digits(2)
            .filter(|&d| d >= 1 && d <= days_in_month(year, month))?;
        Some(true)
    }

    /// `hh:mm:ss[.fff]`, second 60 allowed (leap seconds).
    fn time(&mut self) -> Option<()> {
        self.digits(2).filter(|&h| h <= 23)?;
        self.eat(b':').then_some(())?;
        self.digits(2).filter(|&m| m <= 59)?;
        self.eat(b':').then_some(())?;
        self.digits(2).filter(|&s| s <= 60)?;
        if self.eat(b'.') {
            let n = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
            self.rest = self.rest.get(n..)?;
            (n > 0).then_some(())?;
        }
        Some(())
    }

    /// `Z` or `±hh:mm` within -14:00..+14:00.
    fn zone(&mut self) -> Option<()> {
        if self.eat(b'Z') {
            return Some(());
        }
        (self.eat(b'+') || self.eat(b'-')).then_some(())?;
        let h = self.digits(2)?;
        self.eat(b':').then_some(())?;
        let m = self.digits(2)?;
        (h <= 13 && m <= 59 || h == 14 && m == 0).then_some(())
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

fn is_date(s: &str) -> bool {
    let mut c = Cursor { rest: s.as_bytes() };
    c.date().is_some() && c.done()
}

/// A date, or a full date with a time and a zone (R4 requires the zone with a time).
fn is_date_time(s: &str) -> bool {
    let mut c = Cursor { rest: s.as_bytes() };
    let Some(full) = c.date() else {
        return false;
    };
    if c.done() {
        return true;
    }
    full && c.eat(b'T') && c.time().is_some() && c.zone().is_some() && c.done()
}

/// A full date, time and zone.
fn is_instant(s: &str) -> bool {
    let mut c = Cursor { rest: s.as_bytes() };
    c.date() == Some(true) && c.eat(b'T') && c.time().is_some() && c.zone().is_some() && c.done()
}

fn is_time(s: &str) -> bool {
    let mut c = Cursor { rest: s.as_bytes() };
    c.time().is_some() && c.done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Validates and returns the locations of the problems found (`""` for none).
    fn problems(v: Value) -> Vec<String> {
        match validate(&v) {
            Ok(()) => Vec::new(),
            Err(issues) => issues
                .into_iter()
                .map(|i| i.expression.unwrap_or_default())
                .collect(),
        }
    }

    /// Validates `v` and checks that exactly the locations `expect` are reported.
    fn check(v: Value, expect: &[&str]) {
        let mut got = problems(v.clone());
        got.sort();
        let mut want: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "for {v}: {:?}", validate(&v));
    }

    fn issue_codes(v: Value) -> Vec<IssueType> {
        validate(&v)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.code)
            .collect()
    }

    fn observation() -> Value {
        json!({
            "resourceType": "Observation", "id": "o-1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"}
        })
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    #[test]
    fn the_table_is_whole_and_covers_every_type_tillit_knows() {
        let d = defs();
        assert_eq!(d.faults, Vec::<String>::new());
        for t in crate::resources::SERVED
            .iter()
            .chain(crate::resources::READ_ONLY)
            .chain(&["Bundle", "OperationOutcome"])
        {
            assert!(knows(t), "{t} is not in the table");
        }
        assert!(d.resource_types.len() > 140);
        assert!(d.reference.is_some() && d.coding.is_some() && d.extension.is_some());
        assert!(d.element.is_some());
    }

    #[test]
    fn the_hand_written_primitive_checks_implement_the_table_regexes() {
        // If a regenerated table brings another regex, the check beside it must be revisited.
        let expected: &[(&str, Option<&str>)] = &[
            ("base64Binary", Some(r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+")),
            ("boolean", Some("true|false")),
            ("canonical", Some(r"\S*")),
            ("code", Some(r"[^\s]+(\s[^\s]+)*")),
            (
                "date",
                Some(
                    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
                ),
            ),
            (
                "dateTime",
                Some(
                    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?",
                ),
            ),
            (
                "decimal",
                Some(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"),
            ),
            ("id", Some(r"[A-Za-z0-9\-\.]{1,64}")),
            (
                "instant",
                Some(
                    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))",
                ),
            ),
            ("integer", Some(r"-?([0]|([1-9][0-9]*))")),
            ("markdown", Some(r"[ \r\n\t\S]+")),
            ("oid", Some(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")),
            ("positiveInt", Some("[1-9][0-9]*")),
            ("string", Some(r"[ \r\n\t\S]+")),
            (
                "time",
                Some(r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"),
            ),
            ("unsignedInt", Some("[0]|([1-9][0-9]*)")),
            ("uri", Some(r"\S*")),
            ("url", Some(r"\S*")),
            (
                "uuid",
                Some(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
            ),
            ("xhtml", None),
        ];
        let table: Vec<(&str, Option<&str>)> = defs()
            .regexes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(table, expected);
        for (name, _) in expected {
            assert!(Primitive::from_name(name).is_some(), "{name} has no check");
        }
    }

    #[test]
    fn a_valid_observation_passes() {
        let obs = json!({
            "resourceType": "Observation", "id": "o-1", "status": "final",
            "meta": {"lastUpdated": "2026-03-01T08:00:00.123Z", "versionId": "2"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-03-01T08:00:00+01:00",
            "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
            "component": [{"code": {"text": "x"}, "valueString": "y"}],
            "_status": {"extension": [{"url": "http://example.org/x", "valueBoolean": true}]}
        });
        check(obs, &[]);
    }

    #[test]
    fn missing_required_status_is_reported_with_its_path() {
        check(
            json!({"resourceType": "Observation", "code": {"text": "x"}}),
            &["Observation.status"],
        );
        assert_eq!(
            issue_codes(json!({"resourceType": "Observation", "code": {"text": "x"}})),
            [IssueType::Required]
        );
    }

    #[test]
    fn a_required_primitive_given_only_as_extensions_is_present() {
        // data-absent-reason style: the value is missing, its extension says why.
        let mut obs = observation();
        obs.as_object_mut().unwrap().remove("status");
        obs["_status"] = json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]});
        check(obs, &[]);
    }

    #[test]
    fn missing_required_choice_and_backbone_elements_are_reported() {
        check(
            json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                   "subject": {"reference": "Patient/p"}}),
            &["MedicationRequest.medication[x]"],
        );
        check(
            with(observation(), "component", json!([{"valueString": "a"}])),
            &["Observation.component[0].code"],
        );
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        check(
            json!({
                "resourceType": "Patient", "id": "bad id!", "birthDate": "1950-13-01", "gender": 5,
                "name": {"family": "x"}, "telecom": [], "nickname": "y", "active": "yes",
                "deceasedBoolean": false, "deceasedDateTime": "2020-01-01"
            }),
            &[
                "Patient.id",
                "Patient.birthDate",
                "Patient.gender",
                "Patient.name",
                "Patient.telecom",
                "Patient.nickname",
                "Patient.active",
                "Patient.deceasedDateTime",
            ],
        );
    }

    #[test]
    fn unknown_elements_are_refused_everywhere() {
        check(
            json!({"resourceType": "Patient", "favouriteColour": "blue",
                   "name": [{"family": "x", "nick": "y"}],
                   "contact": [{"name": {"family": "z"}, "shoeSize": 44}],
                   "_favouriteColour": {"id": "a"}, "_name": {"id": "b"}}),
            &[
                "Patient.favouriteColour",
                "Patient.name[0].nick",
                "Patient.contact[0].shoeSize",
                "Patient._favouriteColour",
                "Patient._name",
            ],
        );
        assert_eq!(
            issue_codes(json!({"resourceType": "Patient", "x": 1})),
            [IssueType::Structure]
        );
        // resourceType belongs to resources only.
        check(
            json!({"resourceType": "Patient", "name": [{"resourceType": "HumanName", "family": "x"}]}),
            &["Patient.name[0].resourceType"],
        );
    }

    #[test]
    fn single_and_repeating_elements_must_have_the_right_json_shape() {
        check(
            json!({"resourceType": "Patient", "gender": ["male"], "name": {"family": "x"},
                   "address": [{"line": "Storgata 1"}]}),
            &["Patient.gender", "Patient.name", "Patient.address[0].line"],
        );
    }

    #[test]
    fn empty_objects_arrays_strings_and_nulls_are_invalid() {
        check(
            json!({"resourceType": "Patient", "name": [{}], "gender": null,
                   "telecom": [{"value": ""}], "identifier": [], "address": [{"line": [null]}],
                   "maritalStatus": {"coding": [{}]}}),
            &[
                "Patient.name[0]",
                "Patient.gender",
                "Patient.telecom[0].value",
                "Patient.identifier",
                "Patient.address[0].line[0]",
                "Patient.maritalStatus.coding[0]",
            ],
        );
        // A resource with nothing but its type is empty, yet not an empty object.
        check(json!({"resourceType": "Patient"}), &[]);
        check(
            json!({"resourceType": "Patient", "_id": {"id": "x"}, "name": [{"_id": {"id": "y"}}]}),
            &["Patient._id", "Patient.name[0]._id"],
        );
    }

    #[test]
    fn choice_types_take_only_the_listed_suffixes_and_one_at_a_time() {
        check(
            with(observation(), "valueQuantity", json!({"value": 1})),
            &[],
        );
        check(
            with(observation(), "valueMoney", json!({"value": 1})),
            &["Observation.valueMoney"],
        );
        check(
            with(observation(), "value", json!("x")),
            &["Observation.value"],
        );
        let mut two = with(observation(), "valueString", json!("a"));
        two["valueBoolean"] = json!(true);
        check(two, &["Observation.valueBoolean"]);
        // Age is Quantity by another name, and onsetAge is one of Condition.onset[x].
        check(
            json!({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                   "onsetAge": {"value": 52, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}}),
            &[],
        );
    }

    #[test]
    fn primitive_values_must_have_their_json_type() {
        check(
            json!({"resourceType": "Patient", "active": "true", "multipleBirthInteger": 1.5,
                   "birthDate": 19500101}),
            &[
                "Patient.active",
                "Patient.multipleBirthInteger",
                "Patient.birthDate",
            ],
        );
        check(
            with(
                observation(),
                "valueQuantity",
                json!({"value": "72", "unit": "/min"}),
            ),
            &["Observation.valueQuantity.value"],
        );
        check(
            json!({"resourceType": "Appointment", "status": "booked", "minutesDuration": 0,
                   "priority": -1, "participant": [{"status": "accepted"}]}),
            &["Appointment.minutesDuration", "Appointment.priority"],
        );
    }

    #[test]
    fn primitives_are_checked_against_their_formats() {
        let ok = |p: &str, v: Value| check_primitive(Primitive::from_name(p).unwrap(), &v).is_ok();
        for (p, good, bad) in [
            (
                "date",
                vec![
                    json!("2026"),
                    json!("2026-02"),
                    json!("2024-02-29"),
                    json!("0001-01-01"),
                ],
                vec![
                    json!("2026-02-30"),
                    json!("2023-02-29"),
                    json!("26-01-01"),
                    json!("0000"),
                    json!("2026-1-01"),
                    json!("2026-01-01T10:00:00Z"),
                    json!(20260101),
                ],
            ),
            (
                "dateTime",
                vec![
                    json!("2026"),
                    json!("2026-03"),
                    json!("2026-03-01"),
                    json!("2026-03-01T12:00:00Z"),
                    json!("2026-03-01T12:00:00.123+01:00"),
                    json!("2016-12-31T23:59:60Z"),
                    json!("2026-03-01T12:00:00+14:00"),
                ],
                vec![
                    json!("2026-03-01T12:00:00"),
                    json!("2026-03-01T12:00Z"),
                    json!("2026-03T12:00:00Z"),
                    json!("2026-03-01T24:00:00Z"),
                    json!("2026-03-01T12:00:00.Z"),
                    json!("2026-03-01T12:00:00+14:30"),
                    json!("2026-03-01T12:00:00+0100"),
                    json!("2026-03-01 12:00:00Z"),
                ],
            ),
            (
                "instant",
                vec![
                    json!("2026-03-01T12:00:00Z"),
                    json!("2026-03-01T12:00:00.5-05:00"),
                ],
                vec![
                    json!("2026-03-01"),
                    json!("2026-03-01T12:00:00"),
                    json!("2026"),
                ],
            ),
            (
                "time",
                vec![json!("08:30:00"), json!("23:59:59.999")],
                vec![json!("25:00:00"), json!("08:30"), json!("08:30:00Z")],
            ),
            (
                "integer",
                vec![json!(-3), json!(0), json!(2147483647)],
                vec![json!(1.5), json!(2147483648_i64), json!("3"), json!(1e2)],
            ),
            ("positiveInt", vec![json!(1)], vec![json!(0), json!(-1)]),
            ("unsignedInt", vec![json!(0)], vec![json!(-1)]),
            (
                "decimal",
                vec![json!(1.5), json!(-0.0), json!(3)],
                vec![json!("1.5")],
            ),
            ("boolean", vec![json!(true)], vec![json!("true"), json!(1)]),
            (
                "code",
                vec![json!("final"), json!("a b")],
                vec![
                    json!(""),
                    json!(" final"),
                    json!("final "),
                    json!("a  b"),
                    json!("a\t b"),
                    json!(1),
                ],
            ),
            (
                "id",
                vec![json!("a-B.9"), json!("x".repeat(64))],
                vec![json!("a b"), json!("a_b"), json!("x".repeat(65))],
            ),
            (
                "oid",
                vec![json!("urn:oid:2.16.578.1"), json!("urn:oid:1.0")],
                vec![
                    json!("2.16.578"),
                    json!("urn:oid:3.1"),
                    json!("urn:oid:1.02"),
                    json!("urn:oid:1"),
                ],
            ),
            (
                "uuid",
                vec![json!("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")],
                vec![
                    json!("urn:uuid:61EBE359-bfdc-4613-8bf2-c5e300945f0a"),
                    json!("urn:uuid:61ebe359bfdc46138bf2c5e300945f0a"),
                    json!("61ebe359-bfdc-4613-8bf2-c5e300945f0a"),
                ],
            ),
            (
                "uri",
                vec![json!("http://x"), json!("urn:a"), json!("relative/path")],
                vec![json!("a b"), json!("")],
            ),
            (
                "base64Binary",
                vec![
                    json!("aGVp"),
                    json!("aGVpaA=="),
                    json!("aGVp\naGVp"),
                    json!("a+/="),
                ],
                vec![json!("a%b="), json!("aGV"), json!("a=Vp"), json!("a===")],
            ),
            (
                "string",
                vec![json!("x"), json!(" line\r\n\ttab ")],
                vec![json!(""), json!("form\u{0c}feed"), json!(7)],
            ),
            (
                "xhtml",
                vec![json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>")],
                vec![json!("plain text"), json!("<p>x</p>")],
            ),
        ] {
            for v in good {
                assert!(ok(p, v.clone()), "{p} {v} should pass");
            }
            for v in bad {
                assert!(!ok(p, v.clone()), "{p} {v} should fail");
            }
        }
    }

    #[test]
    fn the_resource_id_and_last_updated_are_checked() {
        check(
            json!({"resourceType": "Patient", "id": "has space",
                   "meta": {"lastUpdated": "2026-03-01"}}),
            &["Patient.id", "Patient.meta.lastUpdated"],
        );
        check(
            json!({"resourceType": "Patient", "id": "x".repeat(65)}),
            &["Patient.id"],
        );
    }

    #[test]
    fn primitive_extensions_hold_only_id_and_extensions_and_line_up_with_their_values() {
        let ext = json!({"url": "http://example.org/x", "valueString": "y"});
        check(
            json!({"resourceType": "Patient", "birthDate": "1970-01-01",
                   "_birthDate": {"extension": [ext]},
                   "name": [{"given": ["A", null], "_given": [null, {"extension": [ext]}]}]}),
            &[],
        );
        check(
            json!({"resourceType": "Patient",
                   "_birthDate": {"value": "x", "extension": [{"valueString": "y"}]},
                   "_gender": [{"id": "a"}],
                   "_active": "yes",
                   "name": [{"given": ["A", null], "_given": [{"id": "g"}]},
                            {"given": ["B"], "_given": {"id": "g"}},
                            {"given": [null], "_given": [null]},
                            {"_given": [null]}]}),
            &[
                "Patient.birthDate.value",
                "Patient.birthDate.extension[0].url",
                "Patient.gender",
                "Patient.active",
                "Patient.name[0].given",
                "Patient.name[0].given[1]",
                "Patient.name[1].given",
                "Patient.name[2].given[0]",
                "Patient.name[3].given[0]",
            ],
        );
    }

    #[test]
    fn backbones_datatypes_and_content_references_are_walked() {
        let q = json!({
            "resourceType": "Questionnaire", "status": "active",
            "item": [{"linkId": "1", "type": "group",
                      "item": [{"linkId": "1.1", "type": "string", "bogus": 1,
                                "item": [{"type": "display"}]}]}]
        });
        check(
            q,
            &[
                "Questionnaire.item[0].item[0].bogus",
                "Questionnaire.item[0].item[0].item[0].linkId",
            ],
        );
        check(
            json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                   "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "x"},
                   "dosageInstruction": [{"timing": {"repeat": {"frequency": 0, "periodUnit": "d"}},
                                          "doseAndRate": [{"doseQuantity": {"value": "1"}}]}]}),
            &[
                "MedicationRequest.dosageInstruction[0].timing.repeat.frequency",
                "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.value",
            ],
        );
    }

    #[test]
    fn references_must_be_well_formed_and_name_an_r4_type() {
        let performers = |r: &str| with(observation(), "performer", json!([{"reference": r}]));
        for good in [
            "Practitioner/a",
            "Practitioner/a/_history/2",
            "http://example.org/fhir/Practitioner/a",
            "https://x",
            "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
            "urn:oid:1.2.3",
            "#c1",
            "Practitioner?identifier=http://x|1",
        ] {
            check(performers(good), &[]);
        }
        for bad in [
            "Practitioner/a/b",
            "practitioner/a",
            "Doctor/a",
            "Practitioner/a b",
            "urn:uuid:nope",
            "ftp//x",
            "#a b",
            "Patient example",
            "Practitioner?",
        ] {
            check(performers(bad), &["Observation.performer[0].reference"]);
        }
    }

    #[test]
    fn codings_need_an_absolute_system_and_a_valid_code() {
        let coding = |system: &str, code: &str| {
            with(
                observation(),
                "code",
                json!({"coding": [{"system": system, "code": code}]}),
            )
        };
        check(coding("urn:oid:2.16.578.1.12.4.1.1.7010", "A"), &[]);
        check(
            coding("LOINC", "8867-4"),
            &["Observation.code.coding[0].system"],
        );
        check(
            coding("http://loinc.org", " 8867-4"),
            &["Observation.code.coding[0].code"],
        );
    }

    #[test]
    fn contained_resources_are_validated_as_resources() {
        let p = problems(json!({
            "resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "contained": [
                {"resourceType": "Medication", "id": "ok"},
                {"resourceType": "Patient", "gender": 1},
                {"resourceType": "Medication", "id": "bad id"},
                {"id": "no-type"},
                {"resourceType": "Doctor", "id": "d"},
                {"resourceType": "Patient", "id": "p2", "meta": {"versionId": "1"},
                 "contained": [{"resourceType": "Patient", "id": "p3"}]}
            ]
        }));
        let mut p = p;
        p.sort();
        assert_eq!(
            p,
            [
                "Observation.contained[1].gender",
                "Observation.contained[2].id",
                "Observation.contained[3]",
                "Observation.contained[4].resourceType",
                "Observation.contained[5].contained",
                "Observation.contained[5].meta.versionId",
            ]
        );
    }

    #[test]
    fn extensions_need_a_url_and_either_a_value_or_extensions() {
        let exts = |e: Value| {
            json!({"resourceType": "Patient", "extension": [e],
                   "modifierExtension": [{"url": "http://example.org/m", "valueBoolean": false}]})
        };
        check(
            exts(json!({"url": "http://example.org/a", "valueAddress": {"city": "Oslo"}})),
            &[],
        );
        check(
            exts(json!({"url": "http://example.org/a",
                        "extension": [{"url": "part", "valueDecimal": 1.5}]})),
            &[],
        );
        check(
            exts(json!({"valueString": "x"})),
            &["Patient.extension[0].url"],
        );
        check(
            exts(json!({"url": "http://example.org/a", "valueFoo": "x", "valueString": "y"})),
            &["Patient.extension[0].valueFoo"],
        );
        check(
            exts(json!({"url": "http://example.org/a"})),
            &["Patient.extension[0]"],
        );
        check(
            exts(json!({"url": "http://example.org/a", "valueString": "x",
                        "extension": [{"url": "b", "valueString": "y"}]})),
            &["Patient.extension[0]"],
        );
    }

    #[test]
    fn bundles_validate_their_entries() {
        check(
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                 "resource": {"resourceType": "Patient", "birthDate": "1970"},
                 "request": {"method": "POST", "url": "Patient"}},
                {"resource": {"resourceType": "Patient", "birthDate": "nope"},
                 "request": {"method": "POST", "url": "Patient"}}
            ]}),
            &["Bundle.entry[1].resource.birthDate"],
        );
    }

    #[test]
    fn unknown_unsupported_or_missing_resource_types_are_refused() {
        assert_eq!(
            issue_codes(json!({"resourceType": "Medication"})),
            [IssueType::NotSupported]
        );
        assert_eq!(
            issue_codes(json!({"resourceType": "Doctor"})),
            [IssueType::NotSupported]
        );
        assert_eq!(issue_codes(json!({"name": "x"})), [IssueType::Structure]);
        assert_eq!(
            issue_codes(json!({"resourceType": 3})),
            [IssueType::Structure]
        );
        assert_eq!(issue_codes(json!([1])), [IssueType::Structure]);
    }
}
