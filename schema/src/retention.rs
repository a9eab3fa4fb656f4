//! Retention review periods (issue 19): when a record is next due for
//! review, from a policy by the case's MoPI group, the record's type and a
//! person's category. Pure: dates in, dates out.
//!
//! The defaults follow the review periods of the College of Policing's
//! Authorised Professional Practice on information management (the
//! "Management of Police Information" retention groups): group 1, certain
//! public protection matters, reviewed every 10 years; group 2, other
//! sexual, violent or serious offences, every 10 years; group 3, all other
//! offences, after 6 years. Each agency is the controller of its own data
//! and configures its own periods; the policy is a node's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A case's MoPI retention group: 1, 2 or 3 (3 unless set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Group(u8);

impl Group {
    pub const DEFAULT: Group = Group(3);

    pub fn new(n: u8) -> Option<Group> {
        (1..=3).contains(&n).then_some(Group(n))
    }

    pub fn number(self) -> u8 {
        self.0
    }
}

/// Review periods, in years: per group, and overrides per record type and
/// per person category (a category's wins over its type's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub group_years: [u32; 3],
    #[serde(default)]
    pub type_years: BTreeMap<String, u32>,
    #[serde(default)]
    pub category_years: BTreeMap<String, u32>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            group_years: [10, 10, 6],
            type_years: BTreeMap::new(),
            category_years: BTreeMap::new(),
        }
    }
}

/// The longest review period a policy may set: past it a date overflows
/// nothing, but no review would ever be due in a node's life.
pub const MAX_YEARS: u32 = 100;

impl Policy {
    /// Years until a record of `record_type` (and `category`, for a person)
    /// in a case of `group` is due for review.
    pub fn years(&self, group: Group, record_type: &str, category: Option<&str>) -> u32 {
        category
            .filter(|_| record_type == "person")
            .and_then(|c| self.category_years.get(&c.to_ascii_lowercase()))
            .or_else(|| self.type_years.get(record_type))
            .copied()
            .unwrap_or(self.group_years[usize::from(group.0 - 1)])
    }
}

/// `at` plus `years` calendar years (29 February becomes 28 February in a
/// year without it).
pub fn add_years(at: OffsetDateTime, years: u32) -> OffsetDateTime {
    let year = at.year().saturating_add(years.min(MAX_YEARS) as i32);
    at.replace_year(year)
        .or_else(|_| at.replace_day(28).and_then(|t| t.replace_year(year)))
        .unwrap_or(at)
}

/// When a record is next due: the date its last review set, else its
/// creation plus the policy's period.
pub fn due(
    policy: &Policy,
    group: Group,
    record_type: &str,
    category: Option<&str>,
    created: OffsetDateTime,
    reviewed_until: Option<OffsetDateTime>,
) -> OffsetDateTime {
    reviewed_until.unwrap_or_else(|| add_years(created, policy.years(group, record_type, category)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_follow_group_then_type_then_category() {
        let mut p = Policy::default();
        assert_eq!(p.years(Group::DEFAULT, "person", Some("suspect")), 6);
        assert_eq!(p.years(Group::new(1).unwrap(), "phone", None), 10);
        assert_eq!(p.years(Group::new(2).unwrap(), "person", None), 10);
        p.type_years.insert("note".into(), 2);
        p.category_years.insert("victim".into(), 3);
        assert_eq!(p.years(Group::new(1).unwrap(), "note", None), 2);
        assert_eq!(p.years(Group::new(1).unwrap(), "person", Some("Victim")), 3);
        // A category only counts for a person.
        assert_eq!(p.years(Group::new(1).unwrap(), "phone", Some("victim")), 10);
        assert!(Group::new(0).is_none() && Group::new(4).is_none());
    }

    #[test]
    fn due_dates_add_calendar_years_and_a_review_moves_them() {
        let p = Policy::default();
        let created = datetime!(2024-02-29 10:00 UTC);
        let d = due(&p, Group::DEFAULT, "person", None, created, None);
        assert_eq!(d, datetime!(2030-02-28 10:00 UTC));
        let later = datetime!(2031-01-01 0:00 UTC);
        assert_eq!(
            due(&p, Group::DEFAULT, "person", None, created, Some(later)),
            later
        );
        assert_eq!(add_years(created, 4), datetime!(2028-02-29 10:00 UTC));
    }
}
