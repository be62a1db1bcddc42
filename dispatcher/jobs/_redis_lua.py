"""The job store's Lua scripts: each one atomic in Redis, so a write is all or nothing.

Keys hang under one prefix P (ARGV[1]); a job is the hash `P job:<id>`:

    job      the Job as inserted (JSON)        request  the client's bytes
    digest   idempotency digest                key      its idempotency key ('' none)
    status   queued | running | terminal       seq      submission order
    outcome  the Outcome once finished (JSON)  owner    the member holding its lease
    qm       its member of `P queue`

    P seq         INCR: submission order          P order       zset id by seq (all jobs)
    P unfinished  zset id by seq                  P queue       lex zset: priority, seq, id
    P lease       zset id by lease expiry (ms)    P finished    zset id by finished_at
    P key:<k>     the id an idempotency key holds P counts      hash status -> jobs
    P done        channel: the id of each job that just finished

Lease expiries are Redis's own clock (TIME), so daemons' clocks never disagree.
"""

from __future__ import annotations

from typing import Final

_NOW: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

INSERT: Final = (
    """
-- ARGV P, id, key, job, request, digest, priority rank (8 hex), owner, lease ms
-- Returns nil once stored, or {id, status, digest} of the job the key already names.
local P, id, key = ARGV[1], ARGV[2], ARGV[3]
if key ~= '' then
  local held = redis.call('GET', P .. 'key:' .. key)
  if held then
    local h = redis.call('HMGET', P .. 'job:' .. held, 'status', 'digest')
    return {held, h[1], h[2]}
  end
end
"""
    + _NOW
    + """
local seq = redis.call('INCR', P .. 'seq')
local qm = ARGV[7] .. string.format('%016x', seq) .. id
redis.call('HSET', P .. 'job:' .. id, 'job', ARGV[4], 'request', ARGV[5], 'digest', ARGV[6],
  'key', key, 'status', 'queued', 'seq', seq, 'owner', ARGV[8], 'qm', qm)
redis.call('ZADD', P .. 'order', seq, id)
redis.call('ZADD', P .. 'unfinished', seq, id)
redis.call('ZADD', P .. 'queue', 0, qm)
redis.call('ZADD', P .. 'lease', now + tonumber(ARGV[9]), id)
redis.call('HINCRBY', P .. 'counts', 'queued', 1)
if key ~= '' then redis.call('SET', P .. 'key:' .. key, id) end
return false
"""
)

MARK: Final = """
-- ARGV P, then pairs id, status (queued | running): applied to unfinished jobs only.
local P = ARGV[1]
for i = 2, #ARGV, 2 do
  local job = P .. 'job:' .. ARGV[i]
  local was = redis.call('HGET', job, 'status')
  if (was == 'queued' or was == 'running') and was ~= ARGV[i + 1] then
    redis.call('HSET', job, 'status', ARGV[i + 1])
    redis.call('HINCRBY', P .. 'counts', was, -1)
    redis.call('HINCRBY', P .. 'counts', ARGV[i + 1], 1)
  end
end
return 0
"""

FINISH: Final = """
-- ARGV P, id, status, outcome, finished_at. The one conditional write of a result:
-- only over queued or running, so a second run's (or a presumed-dead daemon's late)
-- result, or a late cancel, changes nothing. Returns 1 for the call that wrote it.
local P, id = ARGV[1], ARGV[2]
local job = P .. 'job:' .. id
local h = redis.call('HMGET', job, 'status', 'qm')
if h[1] ~= 'queued' and h[1] ~= 'running' then return 0 end
redis.call('HSET', job, 'status', ARGV[3], 'outcome', ARGV[4])
redis.call('HINCRBY', P .. 'counts', h[1], -1)
redis.call('HINCRBY', P .. 'counts', ARGV[3], 1)
redis.call('ZREM', P .. 'unfinished', id)
redis.call('ZREM', P .. 'queue', h[2])
redis.call('ZREM', P .. 'lease', id)
redis.call('ZADD', P .. 'finished', ARGV[5], id)
redis.call('PUBLISH', P .. 'done', id)
return 1
"""

SWEEP: Final = """
-- ARGV P, cutoff, batch. Deletes up to `batch` jobs finished before cutoff (Redis runs
-- one script at a time: the batch bounds how long it is busy). Returns the statuses.
local P = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', '(' .. ARGV[2],
  'LIMIT', 0, tonumber(ARGV[3]))
local gone = {}
for _, id in ipairs(ids) do
  local job = P .. 'job:' .. id
  local h = redis.call('HMGET', job, 'status', 'key')
  if h[2] and h[2] ~= '' then redis.call('DEL', P .. 'key:' .. h[2]) end
  redis.call('DEL', job)
  redis.call('ZREM', P .. 'order', id)
  redis.call('ZREM', P .. 'finished', id)
  redis.call('HINCRBY', P .. 'counts', h[1], -1)
  table.insert(gone, h[1])
end
return gone
"""

RENEW: Final = (
    """
-- ARGV P, owner, lease ms, ids... Extends the leases `owner` holds; returns the ids it
-- no longer holds (finished by any daemon, or taken over after its lease expired).
local P, owner = ARGV[1], ARGV[2]
"""
    + _NOW
    + """
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', P .. 'job:' .. id, 'owner') == owner
      and redis.call('ZSCORE', P .. 'lease', id) then
    redis.call('ZADD', P .. 'lease', now + tonumber(ARGV[3]), id)
  else
    table.insert(lost, id)
  end
end
return lost
"""
)

CLAIM: Final = (
    """
-- ARGV P, owner, lease ms, limit. Takes over unfinished jobs whose lease expired (their
-- daemon died or lost Redis for a whole lease): they are `owner`'s now, to run again.
local P, owner = ARGV[1], ARGV[2]
"""
    + _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', P .. 'lease', '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(ids) do
  redis.call('ZADD', P .. 'lease', now + tonumber(ARGV[3]), id)
  redis.call('HSET', P .. 'job:' .. id, 'owner', owner)
end
return ids
"""
)
