//! Which of two objects wins a conflict (a route's method and path, an API key on a stage):
//! the senior one. Seniority is, in order: having a `creationTimestamp` (every object from the
//! API server has one; standalone files usually not), being created earlier, having been seen
//! earlier by the source (standalone mode remembers the load that first read each object), and
//! last the namespace and name, so that the order is total and never depends on input order.
//! The compiler reads no clock: first-seen ranks come in as data ([`FirstSeen`]).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Serialize;

use crate::table::ObjectKey;

/// When the source first saw each route and usage plan, as ranks: a smaller rank was seen
/// earlier, equal ranks at the same time (standalone mode numbers its loads). An object
/// without a rank ranks after every object with one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirstSeen {
    pub routes: BTreeMap<ObjectKey, u64>,
    pub usage_plans: BTreeMap<ObjectKey, u64>,
}

/// Why the winner of a conflict won: the first part of [`Seniority`] in which the two differ.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precedence {
    /// Both have a `creationTimestamp`; the winner's is earlier.
    Older,
    /// The winner has a `creationTimestamp`, the other none.
    Dated,
    /// Neither is known to be older; the source saw the winner first.
    SeenFirst,
    /// Neither is known to be older nor was seen first; the winner's namespace and name sort
    /// first.
    SortsFirst,
}

impl Precedence {
    /// Completes "Route X already serves GET /p: ..." truthfully.
    pub fn because(self) -> &'static str {
        match self {
            Self::Older => "it is older (creationTimestamp), so it wins",
            Self::Dated => "it has a creationTimestamp and this route has none, so it wins",
            Self::SeenFirst => "it was loaded first, so it keeps them",
            Self::SortsFirst => {
                "neither is known to be older, and its name sorts first, so it wins"
            }
        }
    }
}

/// An object's place in the order of conflicts: smaller is senior.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Seniority {
    undated: bool,
    created: Option<Time>,
    first_seen: u64,
    key: ObjectKey,
}

impl Seniority {
    pub(super) fn of(
        key: &ObjectKey,
        meta: &ObjectMeta,
        first_seen: &BTreeMap<ObjectKey, u64>,
    ) -> Self {
        Self {
            undated: meta.creation_timestamp.is_none(),
            created: meta.creation_timestamp.clone(),
            first_seen: first_seen.get(key).copied().unwrap_or(u64::MAX),
            key: key.clone(),
        }
    }

    /// Why `self`, the senior, wins over `junior`.
    pub(super) fn precedence_over(&self, junior: &Self) -> Precedence {
        if self.undated != junior.undated {
            Precedence::Dated
        } else if self.created != junior.created {
            Precedence::Older
        } else if self.first_seen != junior.first_seen {
            Precedence::SeenFirst
        } else {
            Precedence::SortsFirst
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(created: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            creation_timestamp: created.map(|t| Time(t.parse().unwrap())),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn dated_then_older_then_seen_first_then_name() {
        let ranks = BTreeMap::from([
            (ObjectKey::new("default", "b"), 0),
            (ObjectKey::new("default", "a"), 1),
        ]);
        let key = |n: &str| ObjectKey::new("default", n);
        let old = Seniority::of(&key("z"), &meta(Some("2026-01-01T00:00:00Z")), &ranks);
        let new = Seniority::of(&key("y"), &meta(Some("2026-02-01T00:00:00Z")), &ranks);
        let b = Seniority::of(&key("b"), &meta(None), &ranks);
        let a = Seniority::of(&key("a"), &meta(None), &ranks);
        let c = Seniority::of(&key("c"), &meta(None), &ranks);
        let d = Seniority::of(&key("d"), &meta(None), &ranks);
        let mut all = vec![
            d.clone(),
            c.clone(),
            a.clone(),
            b.clone(),
            new.clone(),
            old.clone(),
        ];
        all.sort();
        assert_eq!(
            all,
            vec![old.clone(), new.clone(), b.clone(), a.clone(), c.clone(), d]
        );
        assert_eq!(old.precedence_over(&new), Precedence::Older);
        assert_eq!(new.precedence_over(&b), Precedence::Dated);
        assert_eq!(b.precedence_over(&a), Precedence::SeenFirst);
        assert_eq!(a.precedence_over(&c), Precedence::SeenFirst);
        assert_eq!(
            Seniority::of(&key("e"), &meta(None), &BTreeMap::new())
                .precedence_over(&Seniority::of(&key("f"), &meta(None), &BTreeMap::new())),
            Precedence::SortsFirst
        );
    }
}
