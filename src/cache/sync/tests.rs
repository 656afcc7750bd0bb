use super::super::{Mode, Settings};
use super::*;
use crate::cache::bus::Sink;
use std::sync::Arc;

#[test]
fn a_lagging_subscriber_clears_l1_and_the_kept_answers_and_is_counted() {
    let cache = Cache::new(
        &Settings {
            mode: Mode::L1,
            ..Settings::default()
        },
        "lag-test",
        None,
    )
    .expect("an L1-only cache needs no Redis");
    let l1 = cache.inner.l1.as_ref().expect("L1");
    // Kept answers are stamped with L1's clears and its change count.
    let (clears, ticket) = (l1.clears(), l1.global_ticket());

    SinkHandle(Arc::downgrade(&cache.inner)).lagged(7);

    assert_eq!(l1.clears(), clears + 1, "L1 forgot everything");
    assert!(!l1.unchanged_since(ticket), "every kept answer is stale");
    assert_eq!(cache.metrics().bus_lags(), (1, 7));
}
