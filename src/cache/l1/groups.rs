//! L1's knowledge of list groups: a local counter per group, moved on each
//! invalidation seen here, and the group's Redis generation, for a bounded
//! number of groups.
use crate::cache::keys::Group;
use std::collections::HashMap;
use std::time::Instant;

/// What this process knows of a list group.
#[derive(Clone, Copy)]
pub(super) struct GroupState {
    /// Moved on every invalidation of the group seen here; part of L1 list
    /// keys, so a move makes every older L1 entry of the group unreachable.
    pub(super) local: u64,
    /// The group's Redis generation and when it was learned.
    pub(super) remote: Option<(u64, Instant)>,
    /// When it was last read or moved: the least recent are forgotten first.
    pub(super) touched: Instant,
    /// The invalidation count when `local` last moved (see `Store::group_stamp`).
    pub(super) moved_at: u64,
}

/// Groups whose state is kept at most. A member's borrows and an author's
/// books are groups of their own, so without a bound the state would grow
/// with every member and author ever seen.
pub const MAX_GROUPS: usize = 65_536;

/// The state of every group seen recently, bounded by [`MAX_GROUPS`].
///
/// A forgotten group must never read a local counter its old L1 entries or
/// kept answers were stamped with, or they would be reachable again after
/// the group moved past them. So counters are handed out from one sequence
/// (every value new, across all groups), and a group with no state reads
/// `floor`, which takes a new value every time groups are forgotten: higher
/// than any counter a forgotten group ever had. The cost of forgetting is a
/// miss for entries of groups with no state, never a stale hit.
pub(super) struct Groups {
    pub(super) states: HashMap<Group, GroupState>,
    /// The last counter value handed out.
    pub(super) sequence: u64,
    /// What a group without state reads as its local counter.
    pub(super) floor: u64,
    /// The invalidation count when groups were last forgotten: a group
    /// without state may have moved up to then.
    pub(super) forgot_at: u64,
}

impl Groups {
    pub(super) fn next(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    /// The group's state, made if it has none (reading `floor`), after
    /// forgetting the least recently touched half if the bound is reached;
    /// `count` is the invalidation count now.
    pub(super) fn entry(&mut self, group: Group, count: u64) -> &mut GroupState {
        if self.states.len() >= MAX_GROUPS && !self.states.contains_key(&group) {
            self.forget_least_recent(count);
        }
        let (floor, forgot_at) = (self.floor, self.forgot_at);
        let state = self.states.entry(group).or_insert(GroupState {
            local: floor,
            remote: None,
            touched: Instant::now(),
            moved_at: forgot_at,
        });
        state.touched = Instant::now();
        state
    }

    fn forget_least_recent(&mut self, count: u64) {
        self.forgot_at = count;
        let mut touched: Vec<Instant> = self.states.values().map(|state| state.touched).collect();
        let keep = MAX_GROUPS / 2;
        let cut = touched.len() - keep;
        let (_, threshold, _) = touched.select_nth_unstable(cut);
        let threshold = *threshold;
        self.states.retain(|_, state| state.touched >= threshold);
        self.floor = self.next();
    }
}
