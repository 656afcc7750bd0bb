//! Invalidations in L2: the entries a write changed are deleted and their
//! versions bumped, its groups moved and its event published, in one
//! script (`INVALIDATE`), or on a Cluster, whose entries span slots, one
//! script per slot (`REMOVE`) and then one in the counters' slot
//! (`ANNOUNCE`). Either runs only under the namespace the caller named its
//! entries in (see [`crate::cache::namespace`]).
use super::{position_texts, Store};
use crate::cache::changes::Invalidation;
use crate::cache::keys::Group;
use crate::db::replicas::Position;
use crate::redis::slots::by_slot;
use crate::redis::{Caller, Topology};
use fred::prelude::*;

/// What the invalidation script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidated {
    /// Done; the groups' new generations.
    Done(Vec<(Group, u64)>),
    /// Nothing: the cache was cleared since the caller learnt its namespace.
    /// This is the current one; the caller learns it and tries again.
    Cleared(u64),
}

/// What `ANNOUNCE` publishes besides the removed entries' keys.
struct Announced<'a> {
    groups: &'a [Group],
    moves: String,
    position: Option<Position>,
}

impl Store {
    /// Deletes the entries, moves `groups` and publishes the event naming
    /// them, in one script call, if `namespace` is still current. `None` if
    /// Redis did not answer (the caller keeps the invalidation pending).
    pub async fn invalidate(
        &self,
        origin: &str,
        namespace: u64,
        invalidation: &Invalidation,
        position: Option<Position>,
    ) -> Option<Invalidated> {
        self.run_invalidate(Caller::Request, origin, namespace, invalidation, position)
            .await
    }

    /// [`Store::invalidate`] for invalidations replayed after an outage.
    pub async fn replay(
        &self,
        origin: &str,
        namespace: u64,
        invalidation: &Invalidation,
        position: Option<Position>,
    ) -> Option<Invalidated> {
        self.run_invalidate(
            Caller::Background,
            origin,
            namespace,
            invalidation,
            position,
        )
        .await
    }

    /// Runs `INVALIDATE`: the groups a move names get new generations like
    /// the others (L2 cannot evict by range), and the moves travel in the
    /// event so that replicas evict only what they meet.
    async fn run_invalidate(
        &self,
        caller: Caller,
        origin: &str,
        namespace: u64,
        invalidation: &Invalidation,
        position: Option<Position>,
    ) -> Option<Invalidated> {
        let entries = &invalidation.entries;
        let groups: Vec<Group> = invalidation
            .groups
            .iter()
            .copied()
            .chain(invalidation.ranged_groups())
            .collect();
        let moves = if invalidation.moves.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&invalidation.moves).expect("moves serialise")
        };
        let keys: Vec<String> = entries
            .iter()
            .map(|(kind, id)| self.redis.keys().entity_in(namespace, *kind, *id))
            .collect();
        if self.redis.topology() == Topology::Cluster {
            let announced = Announced {
                groups: &groups,
                moves,
                position,
            };
            return self
                .invalidate_by_slot(caller, origin, namespace, keys, announced)
                .await;
        }
        let versions: Vec<String> = keys
            .iter()
            .map(|key| self.redis.keys().version(key))
            .collect();
        let mut script_keys: Vec<String> = Vec::with_capacity(1 + keys.len() * 2 + groups.len());
        script_keys.push(self.redis.keys().namespace_counter());
        script_keys.extend(keys);
        script_keys.extend(versions);
        script_keys.extend(
            groups
                .iter()
                .map(|group| self.redis.keys().generation(group)),
        );
        let mut args: Vec<Value> = vec![
            Value::from(entries.len() as i64),
            Value::from(self.counter_ttl.as_millis() as i64),
            Value::from(self.counter_ttl.as_secs().max(1) as i64),
            Value::from(self.redis.keys().channel()),
            Value::from(origin),
            Value::from(namespace as i64),
        ];
        args.extend(groups.iter().map(|group| Value::from(group.name())));
        args.push(Value::from(moves));
        args.push(Value::from(
            crate::cache::bus::wall_clock_micros().to_string(),
        ));
        args.push(Value::from(self.redis.keys().sequence()));
        let (lsn, unknown) = position_texts(position);
        args.push(Value::from(self.redis.keys().lsn()));
        args.push(Value::from(lsn));
        args.push(Value::from(self.redis.keys().unknown_position()));
        args.push(Value::from(unknown));
        let (current, reply): (u64, String) = self
            .redis
            .run(
                caller,
                "invalidate",
                self.redis.scripts().invalidate.evalsha_with_reload(
                    self.redis.writes(),
                    script_keys,
                    args,
                ),
            )
            .await?;
        Some(if current == namespace {
            Invalidated::Done(parse_generations(&reply))
        } else {
            Invalidated::Cleared(current)
        })
    }

    /// `INVALIDATE` on a Cluster, where the entries are in many slots: the
    /// entries of each slot are removed (`REMOVE`, every slot at once),
    /// then the groups are moved and the event published (`ANNOUNCE`).
    /// If any slot did not answer, nothing is announced and the caller
    /// keeps the invalidation pending, as when Redis is down: its replay
    /// removes again, which only bumps the versions once more.
    async fn invalidate_by_slot(
        &self,
        caller: Caller,
        origin: &str,
        namespace: u64,
        keys: Vec<String>,
        announced: Announced<'_>,
    ) -> Option<Invalidated> {
        let Announced {
            groups,
            moves,
            position,
        } = announced;
        let (lsn, unknown) = position_texts(position);
        let ttl = Value::from(self.counter_ttl.as_millis() as i64);
        let removals = by_slot(self.redis.topology(), keys.clone(), |key| key)
            .into_iter()
            .map(|entries| {
                let versions = entries.iter().map(|key| self.redis.keys().version(key));
                let script_keys: Vec<String> = entries.iter().cloned().chain(versions).collect();
                self.redis
                    .scripts()
                    .remove
                    .evalsha_with_reload::<i64, _, _>(self.redis.writes(), script_keys, ttl.clone())
            });
        let mut script_keys: Vec<String> = Vec::with_capacity(4 + groups.len());
        script_keys.push(self.redis.keys().namespace_counter());
        script_keys.push(self.redis.keys().sequence());
        script_keys.push(self.redis.keys().lsn());
        script_keys.push(self.redis.keys().unknown_position());
        script_keys.extend(
            groups
                .iter()
                .map(|group| self.redis.keys().generation(group)),
        );
        let mut args: Vec<Value> = vec![
            Value::from(groups.len() as i64),
            Value::from(self.counter_ttl.as_secs().max(1) as i64),
            Value::from(self.redis.keys().channel()),
            Value::from(origin),
            Value::from(namespace as i64),
            Value::from(moves),
            Value::from(crate::cache::bus::wall_clock_micros().to_string()),
            Value::from(lsn),
            Value::from(unknown),
        ];
        args.extend(groups.iter().map(|group| Value::from(group.name())));
        args.extend(keys.into_iter().map(Value::from));
        let (current, reply): (u64, String) = self
            .redis
            .run(caller, "invalidate", async move {
                futures_util::future::try_join_all(removals).await?;
                self.redis
                    .scripts()
                    .announce
                    .evalsha_with_reload(self.redis.writes(), script_keys, args)
                    .await
            })
            .await?;
        Some(if current == namespace {
            Invalidated::Done(parse_generations(&reply))
        } else {
            Invalidated::Cleared(current)
        })
    }
}

/// The script's list of (group name, generation); Lua's cjson writes an
/// empty list as `{}`.
fn parse_generations(reply: &str) -> Vec<(Group, u64)> {
    let pairs: Vec<(String, u64)> = serde_json::from_str(reply).unwrap_or_default();
    pairs
        .into_iter()
        .filter_map(|(name, generation)| Some((Group::parse(&name)?, generation)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_parse_and_empty_lua_tables_are_empty() {
        assert_eq!(
            parse_generations(r#"[["statistics",4]]"#),
            vec![(Group::Statistics, 4)]
        );
        assert!(parse_generations("{}").is_empty());
    }
}
