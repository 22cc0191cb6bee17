//! Norwegian national identity numbers (fødselsnummer), with the synthetic form used for test
//! data: the month is raised by 80 (Skatteetaten's synthetic numbers), so a synthetic number can
//! never collide with a real person's.
//!
//! Layout: `DDMMYY III K1 K2`: birth date, individual number (its last digit odd for men, even
//! for women; its range gives the century) and two mod-11 check digits.

use crate::InvalidValue;
use time::{Date, Month};

/// FHIR identifier system for Norwegian national ids.
pub const SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.1";

const K1_WEIGHTS: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const K2_WEIGHTS: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

/// Legal sex as encoded in the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
}

/// A checked national id. `Debug` hides the digits: they identify a person.
#[derive(Clone, PartialEq, Eq)]
pub struct NationalId {
    digits: [u8; 11],
    synthetic: bool,
}

impl std::fmt::Debug for NationalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NationalId([redacted])")
    }
}

fn check_digit(digits: &[u8], weights: &[u32]) -> Option<u8> {
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        k => u8::try_from(k).ok(),
    }
}

fn century_for(individual: u16, yy: u8) -> Option<i32> {
    match individual {
        0..=499 => Some(1900),
        500..=749 if yy >= 54 => Some(1800),
        500..=999 if yy <= 39 => Some(2000),
        900..=999 if yy >= 40 => Some(1900),
        _ => None,
    }
}

impl NationalId {
    /// Parses and checks an 11-digit number, real or synthetic.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let err = |r: &str| InvalidValue::new("national id", r);
        let bytes = s.as_bytes();
        if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(err("must be exactly 11 digits"));
        }
        let mut digits = [0u8; 11];
        for (d, b) in digits.iter_mut().zip(bytes) {
            *d = b - b'0';
        }
        let (head, checks) = digits.split_at(9);
        let k1 = check_digit(head, &K1_WEIGHTS).ok_or_else(|| err("invalid check digits"))?;
        let with_k1: Vec<u8> = head.iter().copied().chain([k1]).collect();
        let k2 = check_digit(&with_k1, &K2_WEIGHTS).ok_or_else(|| err("invalid check digits"))?;
        if checks != [k1, k2] {
            return Err(err("invalid check digits"));
        }
        let id = Self {
            digits,
            synthetic: false,
        };
        let mut month = id.pair(2);
        let synthetic = month > 80;
        if synthetic {
            month -= 80;
        }
        let id = Self { synthetic, ..id };
        let day = id.pair(0);
        let yy = id.pair(4);
        let individual = u16::from(id.digit(6)) * 100 + u16::from(id.pair(7));
        let century = century_for(individual, yy)
            .ok_or_else(|| err("individual number does not fit the year"))?;
        let month = Month::try_from(month).map_err(|_| err("invalid month"))?;
        Date::from_calendar_date(century + i32::from(yy), month, day)
            .map_err(|_| err("invalid birth date"))?;
        Ok(id)
    }

    /// The `n`-th synthetic id (counting from 0) for a birth date and sex: deterministic, valid
    /// check digits, month + 80. Returns `None` if the date's individual-number range runs out.
    pub fn synthetic(birth: Date, sex: Sex, n: u16) -> Option<Self> {
        let yy = u8::try_from(birth.year().rem_euclid(100)).ok()?;
        let range: std::ops::RangeInclusive<u16> = match birth.year() {
            1900..=1999 => 0..=499,
            2000..=2039 => 500..=999,
            _ => return None,
        };
        let month = u8::from(birth.month()) + 80;
        let day = birth.day();
        let mut found = 0u16;
        for individual in range {
            let last = individual % 10;
            let odd = last % 2 == 1;
            if odd != (sex == Sex::Male) {
                continue;
            }
            let head = [
                day / 10,
                day % 10,
                month / 10,
                month % 10,
                yy / 10,
                yy % 10,
                u8::try_from(individual / 100).ok()?,
                u8::try_from(individual / 10 % 10).ok()?,
                u8::try_from(last).ok()?,
            ];
            let Some(k1) = check_digit(&head, &K1_WEIGHTS) else {
                continue;
            };
            let mut with_k1 = head.to_vec();
            with_k1.push(k1);
            let Some(k2) = check_digit(&with_k1, &K2_WEIGHTS) else {
                continue;
            };
            if found == n {
                let mut digits = [0u8; 11];
                for (d, s) in digits.iter_mut().zip(with_k1.iter().chain([&k2])) {
                    *d = *s;
                }
                return Some(Self {
                    digits,
                    synthetic: true,
                });
            }
            found += 1;
        }
        None
    }

    fn digit(&self, i: usize) -> u8 {
        self.digits.get(i).copied().unwrap_or(0)
    }

    fn pair(&self, i: usize) -> u8 {
        self.digit(i) * 10 + self.digit(i + 1)
    }

    /// Whether this is a synthetic test number (month + 80).
    pub fn is_synthetic(&self) -> bool {
        self.synthetic
    }

    pub fn sex(&self) -> Sex {
        if self.digit(8) % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The 11 digits. Handle with care: this identifies a person.
    pub fn expose(&self) -> String {
        self.digits.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn accepts_known_valid_numbers_and_rejects_bad_check_digits() {
        // Published example numbers for Norwegian test data.
        assert!(NationalId::parse("01010750160").is_ok());
        assert!(NationalId::parse("01010750161").is_err());
        assert!(NationalId::parse("0101075016").is_err());
        assert!(NationalId::parse("0101075016a").is_err());
    }

    #[test]
    fn synthetic_numbers_are_valid_and_marked() {
        for (i, birth) in [
            date!(1938 - 03 - 14),
            date!(1951 - 11 - 30),
            date!(2004 - 06 - 01),
        ]
        .into_iter()
        .enumerate()
        {
            for sex in [Sex::Female, Sex::Male] {
                let id = NationalId::synthetic(birth, sex, u16::try_from(i).unwrap_or(0))
                    .unwrap_or_else(|| unreachable!("no synthetic id for {birth}"));
                let parsed = NationalId::parse(&id.expose())
                    .unwrap_or_else(|e| unreachable!("{} rejected: {e}", id.expose()));
                assert!(parsed.is_synthetic());
                assert_eq!(parsed.sex(), sex);
                let month: u8 = id
                    .expose()
                    .get(2..4)
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(0);
                assert_eq!(month, u8::from(birth.month()) + 80);
            }
        }
    }

    #[test]
    fn debug_does_not_show_the_number() {
        let id = NationalId::synthetic(date!(1950 - 01 - 01), Sex::Female, 0)
            .unwrap_or_else(|| unreachable!());
        assert_eq!(format!("{id:?}"), "NationalId([redacted])");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,20}") {
            let _ = NationalId::parse(&s);
        }

        #[test]
        fn parse_of_any_11_digits_never_panics(s in "[0-9]{11}") {
            if let Ok(id) = NationalId::parse(&s) {
                prop_assert_eq!(id.expose(), s);
            }
        }

        #[test]
        fn synthetic_ids_always_parse_back(days in 0i64..(365 * 110), male: bool, n in 0u16..20) {
            let birth = time::macros::date!(1915 - 01 - 01) + time::Duration::days(days);
            let sex = if male { Sex::Male } else { Sex::Female };
            if let Some(id) = NationalId::synthetic(birth, sex, n) {
                let back = NationalId::parse(&id.expose());
                prop_assert!(back.is_ok(), "{} for {birth}", id.expose());
                let back = back.unwrap_or_else(|_| unreachable!());
                prop_assert!(back.is_synthetic());
                prop_assert_eq!(back.sex(), sex);
            }
        }

        #[test]
        fn one_changed_digit_is_always_caught(days in 0i64..(365 * 100), pos in 0usize..11, delta in 1u8..10) {
            let birth = time::macros::date!(1920 - 01 - 01) + time::Duration::days(days);
            if let Some(id) = NationalId::synthetic(birth, Sex::Female, 0) {
                let mut digits: Vec<u8> = id.expose().into_bytes();
                if let Some(d) = digits.get_mut(pos) {
                    *d = b'0' + (*d - b'0' + delta) % 10;
                }
                let changed = String::from_utf8(digits).unwrap_or_default();
                prop_assert!(NationalId::parse(&changed).is_err(), "{changed} accepted");
            }
        }
    }
}
