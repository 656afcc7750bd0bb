//! Every Lua script of the service, and their loading: each is sent as
//! `EVALSHA` and, when Redis answers `NOSCRIPT` (a restart, a `SCRIPT
//! FLUSH`, a failover to a server that never saw it), loaded and run again
//! (fred's `evalsha_with_reload`). A script runs atomically: what one reads
//! no other command changes before it writes.
//!
//! On a Cluster every key a script names must be in one hash slot; the key
//! formats ([`super::keyspace`]) and the per-slot splitting
//! ([`super::slots`]) see to it.
use fred::types::scripts::Script;

/// The **namespace** counter as the scripts read it: never older than the
/// namespace the caller knows. A counter found older (lost to an eviction
/// or a flush) is restored, so the namespace never moves back and a replica
/// that knows better never gives in to one that knows less.
const NAMESPACE: &str = r"
local function namespace(counter, known)
  local current = tonumber(redis.call('GET', counter) or '0')
  if current < known then
    redis.call('SET', counter, known)
    current = known
  end
  return current
end
";

/// Stores entries whose guard key still holds the value read before the
/// database was: the entry's own version, or the global invalidation
/// sequence for rows primed from a list query. KEYS: (entry, guard) pairs;
/// ARGV: (expected guard value or "", ttl in ms, bytes) triples. Returns
/// how many entries were stored and their bytes.
const FILL: &str = r"
local stored, bytes = 0, 0
for i = 1, #KEYS, 2 do
  local j = (i - 1) / 2 * 3
  local current = redis.call('GET', KEYS[i + 1]) or ''
  if current == ARGV[j + 1] then
    redis.call('SET', KEYS[i], ARGV[j + 3], 'PX', ARGV[j + 2])
    stored = stored + 1
    bytes = bytes + #ARGV[j + 3]
  end
end
return { stored, bytes }
";

/// Deletes entries and bumps their versions, bumps group generations, and
/// publishes one event naming all of it, atomically. A group's new
/// generation is the sequence's new value, which never expires: a counter
/// of its own would restart at 1 after expiring and make old pages current
/// again. The entries are named in the namespace the caller knows; if the
/// cache was cleared since, nothing is done and the current namespace is
/// returned, so the caller learns it and names them again: deleting entries
/// in a namespace nobody reads would leave the current ones stale.
/// KEYS: the namespace counter, n entries, their n versions, then the
/// groups' generation counters. ARGV: n, version ttl (ms), generation ttl
/// (s), channel, origin, the entries' namespace, the groups' names, the
/// moves (JSON, passed through to the event as a string; empty for none),
/// the publisher's wall clock (the event's `at`, microseconds since the
/// Unix epoch, as a string: Lua's numbers would round it), the global
/// invalidation sequence, the LSN key, the primary's WAL position after
/// the write (16 hex digits, so strings compare as positions; empty without
/// read replicas or when unknown), kept in the LSN key if higher and
/// carried by the event, then the unknown-position key and the token of an
/// unknown position (16 hex digits; empty when the position is known),
/// kept in that key and carried by the event. Returns the namespace and,
/// if it was the caller's, the groups' new generations.
const INVALIDATE: &str = r"
local n = tonumber(ARGV[1])
local ns = namespace(KEYS[1], tonumber(ARGV[6]))
if ns ~= tonumber(ARGV[6]) then
  return { ns, '' }
end
local keys = {}
for i = 1, n do
  redis.call('DEL', KEYS[1 + i])
  redis.call('INCR', KEYS[1 + n + i])
  redis.call('PEXPIRE', KEYS[1 + n + i], ARGV[2])
  keys[i] = KEYS[1 + i]
end
local sequence = redis.call('INCR', ARGV[#ARGV - 4])
local groups = {}
for j = 2 * n + 2, #KEYS do
  redis.call('SET', KEYS[j], sequence, 'EX', ARGV[3])
  groups[#groups + 1] = { ARGV[6 + j - 2 * n - 1], sequence }
end
local event = { origin = ARGV[5], namespace = ns, at = ARGV[#ARGV - 5] }
if n > 0 then event.keys = keys end
if #groups > 0 then event.groups = groups end
if ARGV[#ARGV - 6] ~= '' then event.moves = ARGV[#ARGV - 6] end
local lsn = ARGV[#ARGV - 2]
if lsn ~= '' then
  if lsn > (redis.call('GET', ARGV[#ARGV - 3]) or '') then
    redis.call('SET', ARGV[#ARGV - 3], lsn)
  end
  event.lsn = lsn
end
if ARGV[#ARGV] ~= '' then
  redis.call('SET', ARGV[#ARGV - 1], ARGV[#ARGV])
  event.unknown = ARGV[#ARGV]
end
redis.call('PUBLISH', ARGV[4], cjson.encode(event))
return { ns, cjson.encode(groups) }
";

/// On a Cluster, `INVALIDATE`'s first half, run once per slot the entries
/// are in: deletes them and bumps their versions. KEYS: n entries of one
/// slot, then their n versions. ARGV: version ttl (ms).
const REMOVE: &str = r"
local n = #KEYS / 2
for i = 1, n do
  redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[n + i])
  redis.call('PEXPIRE', KEYS[n + i], ARGV[1])
end
return n
";

/// On a Cluster, `INVALIDATE`'s second half, run after `REMOVE` took every
/// slot's entries, in the slot of the deployment's counters: if the
/// namespace is still the one the entries were named in, moves the groups
/// and publishes the event, as `INVALIDATE` does; otherwise does nothing
/// and returns the current namespace. Checking the namespace after the
/// removal rather than before is as safe: it only moves forward, so it was
/// the caller's during the removal too, and a replica that learns a newer
/// one learns it after this check, so after the write committed: its loads
/// read the written rows. KEYS: the namespace counter, the sequence, then
/// the LSN key, the unknown-position key, then the groups' generation
/// counters. ARGV: the number of groups, generation ttl (s), channel,
/// origin, the entries' namespace, the moves (as in `INVALIDATE`), the
/// publisher's wall clock, the LSN and the unknown position's token (as in
/// `INVALIDATE`), the groups' names, then the removed entries' keys, for
/// the event.
const ANNOUNCE: &str = r"
local g = tonumber(ARGV[1])
local ns = namespace(KEYS[1], tonumber(ARGV[5]))
if ns ~= tonumber(ARGV[5]) then
  return { ns, '' }
end
local sequence = redis.call('INCR', KEYS[2])
local groups = {}
for j = 1, g do
  redis.call('SET', KEYS[4 + j], sequence, 'EX', ARGV[2])
  groups[j] = { ARGV[9 + j], sequence }
end
local keys = {}
for i = 10 + g, #ARGV do keys[#keys + 1] = ARGV[i] end
local event = { origin = ARGV[4], namespace = ns, at = ARGV[7] }
if #keys > 0 then event.keys = keys end
if #groups > 0 then event.groups = groups end
if ARGV[6] ~= '' then event.moves = ARGV[6] end
local lsn = ARGV[8]
if lsn ~= '' then
  if lsn > (redis.call('GET', KEYS[3]) or '') then
    redis.call('SET', KEYS[3], lsn)
  end
  event.lsn = lsn
end
if ARGV[9] ~= '' then
  redis.call('SET', KEYS[4], ARGV[9])
  event.unknown = ARGV[9]
end
redis.call('PUBLISH', ARGV[3], cjson.encode(event))
return { ns, cjson.encode(groups) }
";

/// Keeps ARGV[1] (an LSN, 16 hex digits) in KEYS[1] (the LSN key) if it
/// is higher than the one there, or, when ARGV[1] is empty, ARGV[2] (an
/// unknown position's token) in KEYS[2] (the unknown-position key).
const RECORD_LSN: &str = r"
if ARGV[1] == '' then
  redis.call('SET', KEYS[2], ARGV[2])
elseif ARGV[1] > (redis.call('GET', KEYS[1]) or '') then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
";

/// Publishes a heartbeat carrying the namespace current when it was sent,
/// so hearing it back proves the namespace known, as it proves every
/// earlier event heard. It writes before it publishes: a Redis that refuses
/// writes but still publishes (full under `noeviction`, or a primary turned
/// read-only replica by a failover) refuses invalidations too, so its
/// heartbeats must fail with them, or replicas would go on trusting a bus
/// that carries no invalidation. KEYS: the namespace counter, the last
/// heartbeat. ARGV: channel, the heartbeat's JSON up to the namespace's
/// value (Lua numbers would round a large `beat`), the namespace the sender
/// knows.
const HEARTBEAT: &str = r"
redis.call('SET', KEYS[2], ARGV[2], 'PX', 60000)
local ns = namespace(KEYS[1], tonumber(ARGV[3]))
return redis.call('PUBLISH', ARGV[1], ARGV[2] .. string.format('%d', ns) .. '}')
";

/// Finds out whether the dataset is the one the cache last worked on, or
/// one a failover promoted (Sentinel only). A promoted replica may lack
/// writes the old primary acknowledged (replication is asynchronous): the
/// deletions, version bumps and generation moves of invalidations whose
/// writes were answered. So when the primary's replication id differs from
/// the one recorded in the dataset, the namespace moves, as `cache clear`
/// moves it: nothing filled before the failover is read again, whatever it
/// missed. The first replica to find the new primary moves it; the others
/// find the id recorded and only learn the namespace. A dataset with no id
/// recorded holds no entry (the id is recorded before any replica trusts
/// the bus, so before any fill, and replication keeps that order) and
/// needs no move. On a Cluster every primary holds part of the dataset, so
/// the id is that of every primary together, which the caller reads and
/// passes: any failover changes it. KEYS: the namespace counter, the
/// primary marker. ARGV: the namespace the caller knows, then on a Cluster
/// the primaries' ids. Returns the namespace and 1 if it moved.
const PRIMARY: &str = r"
local ns = namespace(KEYS[1], tonumber(ARGV[1]))
local id = ARGV[2]
if not id then
  id = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
end
if not id then return redis.error_reply('no master_replid in INFO replication') end
local recorded = redis.call('GET', KEYS[2])
if recorded == id then return { ns, 0 } end
redis.call('SET', KEYS[2], id)
if not recorded then return { ns, 0 } end
return { redis.call('INCR', KEYS[1]), 1 }
";

/// Moves the namespace one past the newest known (the counter, or the
/// caller's knowledge if Redis lost the counter) and publishes the clear.
/// KEYS: the namespace counter. ARGV: channel, origin, the namespace the
/// caller knows. Returns the new namespace.
const CLEAR: &str = r"
local ns = namespace(KEYS[1], tonumber(ARGV[3])) + 1
redis.call('SET', KEYS[1], ns)
redis.call('PUBLISH', ARGV[1], cjson.encode({ origin = ARGV[2], namespace = ns }))
return ns
";

/// Judges an attempt against fixed-window counters and counts it, in one
/// step (see [`super::windows`]). Every counter is read first, raised to its
/// floor: the attempt is refused if any has reached its limit. Then each
/// adds one if the attempt was let through, or if it counts refusals too.
/// A window starts with its counter's first count; a counter Redis lost
/// (restarted empty, expired) while the floor kept counting is made again
/// with the floor's own window left, not a new one, so a replica's count
/// cannot lengthen a lockout; a counter left without an expiry gets one.
/// KEYS: counters; ARGV: (window in ms, limit, floor, 1 if refusals count,
/// ms left of the floor's window) per counter. Returns (count, ms until the
/// window ends, 1 if it refused) per counter.
const RESERVE: &str = r"
local counts, refused = {}, false
for i = 1, #KEYS do
  local stored = tonumber(redis.call('GET', KEYS[i]) or '0')
  counts[i] = math.max(stored, tonumber(ARGV[5 * i - 2]))
  if counts[i] >= tonumber(ARGV[5 * i - 3]) then refused = true end
end
local out = {}
for i = 1, #KEYS do
  local n = counts[i]
  local over = n >= tonumber(ARGV[5 * i - 3])
  if not refused or ARGV[5 * i - 1] == '1' then n = n + 1 end
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl <= 0 then
    ttl = tonumber(ARGV[5 * i - 4])
    local floor_left = tonumber(ARGV[5 * i])
    if tonumber(ARGV[5 * i - 2]) > 0 and floor_left > 0 then ttl = floor_left end
  end
  if n > 0 then redis.call('SET', KEYS[i], n, 'PX', ttl) end
  out[#out + 1] = n
  out[#out + 1] = ttl
  out[#out + 1] = over and 1 or 0
end
return out
";

/// Gives back one count of a counter, never below zero. KEYS: the counter.
/// Returns the count left.
const RELEASE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
";

/// Stores one snapshot and indexes it. KEYS: the snapshot, the index.
/// ARGV: the snapshot, its TTL (ms), the replica id, the publisher's clock
/// (ms since the Unix epoch), the oldest clock kept in the index.
const PUBLISH_STATS: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
return 1
";

/// Every script, hashed once: the gateway's callers run them by field.
pub struct Scripts {
    /// `FILL`: stores L2 entries whose guard still holds.
    pub fill: Script,
    /// `INVALIDATE`: deletes entries, moves groups and publishes the event, on one server.
    pub invalidate: Script,
    /// `REMOVE`: on a Cluster, an invalidation's removal in one slot.
    pub remove: Script,
    /// `ANNOUNCE`: on a Cluster, an invalidation's group moves and event.
    pub announce: Script,
    /// `RECORD_LSN`: keeps a WAL position for a clear.
    pub record_lsn: Script,
    /// `HEARTBEAT`: publishes a heartbeat carrying the namespace.
    pub heartbeat: Script,
    /// `PRIMARY`: moves the namespace when a failover promoted another dataset.
    pub primary: Script,
    /// `CLEAR`: moves the namespace and publishes the clear.
    pub clear: Script,
    /// `RESERVE`: judges and counts an attempt against fixed windows.
    pub reserve: Script,
    /// `RELEASE`: gives back one count of a window.
    pub release: Script,
    /// `PUBLISH_STATS`: stores a replica's stats snapshot and indexes it.
    pub publish_stats: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        // The scripts that read the namespace counter share its function.
        let with_namespace = |script: &str| Script::from_lua(format!("{NAMESPACE}{script}"));
        Self {
            fill: Script::from_lua(FILL),
            invalidate: with_namespace(INVALIDATE),
            remove: Script::from_lua(REMOVE),
            announce: with_namespace(ANNOUNCE),
            record_lsn: Script::from_lua(RECORD_LSN),
            heartbeat: with_namespace(HEARTBEAT),
            primary: with_namespace(PRIMARY),
            clear: with_namespace(CLEAR),
            reserve: Script::from_lua(RESERVE),
            release: Script::from_lua(RELEASE),
            publish_stats: Script::from_lua(PUBLISH_STATS),
        }
    }
}
