"""The Lua scripts: each one atomic in Redis, timed by Redis's own clock (TIME).

Numbers go back as strings: Redis turns a Lua number into an integer.
"""

from __future__ import annotations

from typing import Final

LEASE: Final = """
-- KEYS[1] the deployment's budget (hash r, t, ts)
-- ARGV rpm, tpm, want_r, want_t, need_r, need_t, back_r, back_t
-- The same token buckets as actors/_limits.py: `rpm` and `tpm` units, refilled
-- continuously over a minute, full at first use. Gives `back` (a negative back is a
-- debt: tokens settled above their reservation), then grants up to `want` of each
-- limited budget, or nothing unless `need` fits in both.
-- Returns granted r, granted t, seconds until `need` fits, used r, used t.
local cap_r, cap_t = tonumber(ARGV[1]), tonumber(ARGV[2])
local want_r, want_t = tonumber(ARGV[3]), tonumber(ARGV[4])
local need_r, need_t = tonumber(ARGV[5]), tonumber(ARGV[6])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'r', 't', 'ts')
local r = tonumber(h[1]) or cap_r
local t = tonumber(h[2]) or cap_t
local elapsed = now - (tonumber(h[3]) or now)
if elapsed > 0 then
  r = math.min(cap_r, r + elapsed * cap_r / 60)
  t = math.min(cap_t, t + elapsed * cap_t / 60)
end
r = math.min(cap_r, r + tonumber(ARGV[7]))
t = math.min(cap_t, t + tonumber(ARGV[8]))
local got_r, got_t, wait = 0, 0, 0
if (cap_r == 0 or r >= need_r) and (cap_t == 0 or t >= need_t) then
  if cap_r > 0 then got_r = math.max(math.min(want_r, r), 0) end
  if cap_t > 0 then got_t = math.max(math.min(want_t, t), 0) end
  r = r - got_r
  t = t - got_t
else
  if cap_r > 0 and r < need_r then wait = (need_r - r) * 60 / cap_r end
  if cap_t > 0 and t < need_t then wait = math.max(wait, (need_t - t) * 60 / cap_t) end
end
-- Kept until it would be full again (then it is the same as no key).
local full = 0
if cap_r > 0 then full = (cap_r - r) * 60 / cap_r end
if cap_t > 0 then full = math.max(full, (cap_t - t) * 60 / cap_t) end
redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(t), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(full * 1000) + 1000)
return {tostring(got_r), tostring(got_t), tostring(wait), tostring(cap_r - r), tostring(cap_t - t)}
"""

OPEN: Final = """
-- KEYS[1] the breaker's state key, KEYS[2] its probe lock
-- ARGV member, hold_ms, channel, message
-- Open for everyone: the state key lives as long as the longest hold, the probe lock
-- this member may hold is freed, and the daemons listening are told.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return redis.call('PUBLISH', ARGV[3], ARGV[4])
"""

CLOSE: Final = """
-- KEYS[1] the breaker's state key, KEYS[2] its probe lock; ARGV channel, message
redis.call('DEL', KEYS[1], KEYS[2])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""

FREE: Final = """
-- KEYS[1] a probe lock; ARGV member, channel, message: free it if this member holds it
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 0
"""

HEARTBEAT: Final = """
-- KEYS[1] the members (sorted set: member -> expiry ms), KEYS[2] this member's key
-- ARGV ttl_ms, member, info. Returns the number of members alive.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return redis.call('ZCARD', KEYS[1])
"""
