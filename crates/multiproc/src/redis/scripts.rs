//! The Lua scripts that make each queue operation one atomic step on the
//! server. Every script takes the queue's three keys, KEYS = stream,
//! dead-letter stream, unfinished count (some use fewer), and touches no
//! other keys but the queue's own heartbeats (one hash tag, so a cluster
//! keeps them together); the arguments are documented on each.

use std::sync::OnceLock;

use redis::Script;

/// `put` of one or more items: add them in order while fewer than
/// `maxsize` items wait undelivered, and (joinable) count each unfinished.
/// How many were added (the first ones; 0 when full), or -1 when
/// `must exist` is set and the stream does not exist (a reply queue whose
/// reader removed it: an answer must not bring it back).
///
/// ARGV: maxsize (0: none), joinable (1/0), group, must exist (1/0),
/// payload, payload, ...
const PUT: &str = r"
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local max = tonumber(ARGV[1])
local room = #ARGV - 4
if max > 0 then
  local waiting = redis.call('XLEN', KEYS[1]) - redis.call('XPENDING', KEYS[1], ARGV[3])[1]
  room = math.min(room, max - waiting)
end
local added = 0
while added < room do
  redis.call('XADD', KEYS[1], '*', 'd', ARGV[5 + added])
  added = added + 1
end
if added > 0 and ARGV[2] == '1' then redis.call('INCRBY', KEYS[3], added) end
return added
";

/// `task_done` of deliveries: acknowledge and delete each that this
/// consumer still holds, count it finished, and wake `join` at zero. For
/// each id in order: 1 when done, 0 when the entry is another consumer's
/// (it reclaimed it, thinking this one dead: it will be done there), -1
/// when it is pending with no one (done already: an earlier try ran but
/// its reply was lost).
///
/// ARGV: group, consumer, joinable, channel, entry id, entry id, ...
const DONE: &str = r"
local out = {}
local finished = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #p == 0 then
    out[#out + 1] = -1
  elseif p[1][2] ~= ARGV[2] then
    out[#out + 1] = 0
  else
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    finished = finished + 1
    out[#out + 1] = 1
  end
end
if finished > 0 and ARGV[3] == '1' then
  if redis.call('DECRBY', KEYS[3], finished) <= 0 then redis.call('PUBLISH', ARGV[4], 'done') end
end
return out
";

/// Move the entries pending with consumers whose heartbeat key expired to
/// this consumer, never by idle time alone; entries delivered more than
/// the limit go to the dead-letter stream instead (and count as finished).
/// Consumers gone with nothing pending are removed from the group. Returns
/// `[id, payload, deliveries, ...]` of the entries claimed for delivery.
///
/// ARGV: group, consumer, heartbeat key prefix, delivery limit (0: none),
/// joinable, channel, most entries to claim.
const RECLAIM: &str = r"
local out = {}
local limit = tonumber(ARGV[4])
local budget = tonumber(ARGV[7])
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, c in ipairs(consumers) do
  local name, pending
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
  end
  if name ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. name) == 0 then
    if pending == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    elseif budget > 0 then
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', budget, name)
      for _, e in ipairs(p) do
        local id, n = e[1], e[4] + 1
        local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)
        local entry = got[1]
        if entry and entry[2] then
          local data = entry[2][2]
          if limit > 0 and n > limit then
            redis.call('XADD', KEYS[2], '*', 'd', data, 'id', id, 'deliveries', n,
              'consumer', name, 'reason', 'delivery limit')
            redis.call('XACK', KEYS[1], ARGV[1], id)
            redis.call('XDEL', KEYS[1], id)
            if ARGV[5] == '1' and redis.call('DECR', KEYS[3]) <= 0 then
              redis.call('PUBLISH', ARGV[6], 'done')
            end
          else
            out[#out + 1] = id
            out[#out + 1] = data
            out[#out + 1] = n
          end
        else
          -- deleted from the stream while pending: nothing to deliver
          redis.call('XACK', KEYS[1], ARGV[1], id)
        end
        budget = budget - 1
      end
    end
  end
end
return out
";

/// Move one delivery of this consumer to the dead-letter stream (a payload
/// that does not decode): it counts as finished. 1 if moved, 0 if it was
/// not this consumer's any more.
///
/// ARGV: group, entry id, consumer, payload, deliveries, reason, joinable,
/// channel.
const BURY: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XADD', KEYS[2], '*', 'd', ARGV[4], 'id', ARGV[2], 'deliveries', ARGV[5],
  'consumer', ARGV[3], 'reason', ARGV[6])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[7] == '1' and redis.call('DECR', KEYS[3]) <= 0 then redis.call('PUBLISH', ARGV[8], 'done') end
return 1
";

/// Put a dead letter back on the queue as a new item (unfinished again).
/// The new entry's id, or nil if there is no such dead letter.
///
/// ARGV: dead letter's id, joinable.
const REQUEUE: &str = r"
local e = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #e == 0 then return false end
local fields = e[1][2]
local data
for i = 1, #fields, 2 do
  if fields[i] == 'd' then data = fields[i + 1] end
end
if not data then return false end
local id = redis.call('XADD', KEYS[1], '*', 'd', data)
if ARGV[2] == '1' then redis.call('INCR', KEYS[3]) end
redis.call('XDEL', KEYS[2], ARGV[1])
return id
";

macro_rules! script {
    ($fn:ident, $src:ident) => {
        pub(super) fn $fn() -> &'static Script {
            static S: OnceLock<Script> = OnceLock::new();
            S.get_or_init(|| Script::new($src))
        }
    };
}

script!(put, PUT);
script!(done, DONE);
script!(reclaim, RECLAIM);
script!(bury, BURY);
script!(requeue, REQUEUE);
