//! Message catalogues of the web app: Norwegian bokmål (the default) and English.
//!
//! Texts live in `i18n/<lang>/<area>.txt`, one `key = text` per line (`#` starts a comment,
//! `{0}`, `{1}` are placeholders), never in code. Each area of the app has its own file so
//! that the files stay small; keys start with the area's name. A unit test checks that both
//! languages have exactly the same keys and placeholders.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The languages the web app speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Nb,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Nb => "nb",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "nb" | "no" | "nn" => Some(Lang::Nb),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (the switch in the header offers it).
    pub fn other(self) -> Self {
        match self {
            Lang::Nb => Lang::En,
            Lang::En => Lang::Nb,
        }
    }
}

/// Every catalogue file, by language and area.
const FILES: &[(Lang, &str, &str)] = &[
    (Lang::Nb, "common", include_str!("../../i18n/nb/common.txt")),
    (Lang::En, "common", include_str!("../../i18n/en/common.txt")),
    (
        Lang::Nb,
        "clinician",
        include_str!("../../i18n/nb/clinician.txt"),
    ),
    (
        Lang::En,
        "clinician",
        include_str!("../../i18n/en/clinician.txt"),
    ),
    (
        Lang::Nb,
        "patient",
        include_str!("../../i18n/nb/patient.txt"),
    ),
    (
        Lang::En,
        "patient",
        include_str!("../../i18n/en/patient.txt"),
    ),
    (
        Lang::Nb,
        "security",
        include_str!("../../i18n/nb/security.txt"),
    ),
    (
        Lang::En,
        "security",
        include_str!("../../i18n/en/security.txt"),
    ),
    (Lang::Nb, "admin", include_str!("../../i18n/nb/admin.txt")),
    (Lang::En, "admin", include_str!("../../i18n/en/admin.txt")),
    (Lang::Nb, "rights", include_str!("../../i18n/nb/rights.txt")),
    (Lang::En, "rights", include_str!("../../i18n/en/rights.txt")),
];

type Catalogue = HashMap<&'static str, &'static str>;

/// Parses one file: `key = text` lines.
fn parse(text: &'static str) -> Vec<(&'static str, &'static str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn catalogues() -> &'static HashMap<Lang, Catalogue> {
    static CAT: OnceLock<HashMap<Lang, Catalogue>> = OnceLock::new();
    CAT.get_or_init(|| {
        let mut out: HashMap<Lang, Catalogue> = HashMap::new();
        for (lang, _, text) in FILES {
            out.entry(*lang).or_default().extend(parse(text));
        }
        out
    })
}

/// Looks texts up in one language. Templates call `tr.t("key")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn new(lang: Lang) -> Self {
        Self { lang }
    }

    /// The text for `key`; a missing key shows itself (and fails the catalogue test).
    pub fn t(&self, key: &str) -> &'static str {
        catalogues()
            .get(&self.lang)
            .and_then(|c| c.get(key))
            .or_else(|| catalogues().get(&Lang::Nb).and_then(|c| c.get(key)))
            .copied()
            .unwrap_or("??")
    }

    /// The text for `key` with `{0}` replaced.
    pub fn t1(&self, key: &str, a: impl std::fmt::Display) -> String {
        self.t(key).replace("{0}", &a.to_string())
    }

    /// The text for `key` with `{0}` and `{1}` replaced.
    pub fn t2(&self, key: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.t(key)
            .replace("{0}", &a.to_string())
            .replace("{1}", &b.to_string())
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// A role's name.
    pub fn role(&self, role: tillit_core::Role) -> &'static str {
        self.t(&format!("common.role.{}", role.code()))
    }

    /// A data category's name.
    pub fn category(&self, c: tillit_fhir::category::Category) -> &'static str {
        self.t(&format!("common.category.{}", c.code()))
    }

    /// A category's name from its code (as stored in audit events and rules).
    pub fn category_code(&self, code: &str) -> &'static str {
        self.t(&format!("common.category.{code}"))
    }

    /// A date and time in the page's language, Norwegian local time.
    pub fn datetime(&self, t: time::OffsetDateTime) -> String {
        let t = crate::audit::review::oslo(t);
        format!(
            "{:02}.{:02}.{} {:02}:{:02}",
            t.day(),
            u8::from(t.month()),
            t.year(),
            t.hour(),
            t.minute()
        )
    }

    /// A date in the page's language.
    pub fn date(&self, t: time::OffsetDateTime) -> String {
        let t = crate::audit::review::oslo(t);
        format!("{:02}.{:02}.{}", t.day(), u8::from(t.month()), t.year())
    }
}

/// Every key in a language (for tests and for checking templates).
pub fn keys(lang: Lang) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = catalogues()
        .get(&lang)
        .map(|c| c.keys().copied().collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::collections::HashSet;

    fn placeholders(s: &str) -> Vec<&str> {
        let mut p: Vec<&str> = ["{0}", "{1}", "{2}"]
            .into_iter()
            .filter(|x| s.contains(x))
            .collect();
        p.sort_unstable();
        p
    }

    #[test]
    fn both_languages_have_the_same_keys_and_placeholders() {
        let nb: HashSet<_> = keys(Lang::Nb).into_iter().collect();
        let en: HashSet<_> = keys(Lang::En).into_iter().collect();
        let only_nb: Vec<_> = nb.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&nb).collect();
        assert!(only_nb.is_empty(), "missing in English: {only_nb:?}");
        assert!(only_en.is_empty(), "missing in Norwegian: {only_en:?}");
        for k in &nb {
            assert_eq!(
                placeholders(Tr::new(Lang::Nb).t(k)),
                placeholders(Tr::new(Lang::En).t(k)),
                "placeholders differ for {k}"
            );
        }
    }

    #[test]
    fn no_key_is_defined_twice_and_keys_start_with_their_area() {
        for (lang, area, text) in FILES {
            let mut seen = HashSet::new();
            for (k, v) in parse(text) {
                assert!(seen.insert(k), "{k} twice in {}/{area}", lang.code());
                assert!(!v.is_empty(), "{k} is empty in {}/{area}", lang.code());
                assert!(
                    k.starts_with(&format!("{area}.")),
                    "{k} in {}/{area} does not start with '{area}.'",
                    lang.code()
                );
            }
        }
        let total: usize = FILES
            .iter()
            .filter(|(l, _, _)| *l == Lang::Nb)
            .map(|(_, _, t)| parse(t).len())
            .sum();
        assert_eq!(total, keys(Lang::Nb).len(), "a key is in two areas");
    }

    /// Every `tr.t("...")`-style key a template or web module uses exists.
    #[test]
    fn every_key_used_exists() {
        let known: HashSet<_> = keys(Lang::Nb).into_iter().collect();
        let dirs = [
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            concat!(env!("CARGO_MANIFEST_DIR"), "/src"),
        ];
        let mut missing = Vec::new();
        let mut stack: Vec<std::path::PathBuf> = dirs.iter().map(Into::into).collect();
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
                continue;
            }
            // This file's own documentation shows the call with a made-up key.
            if p.ends_with("i18n.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for pat in [".t(\"", ".t1(\"", ".t2(\""] {
                for (i, _) in text.match_indices(pat) {
                    let rest = &text[i + pat.len()..];
                    let key = rest.split('"').next().unwrap_or_default();
                    if !key.is_empty() && !known.contains(key) && !key.contains("{") {
                        missing.push(format!("{}: {key}", p.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys not in the catalogue: {missing:#?}"
        );
    }
}
