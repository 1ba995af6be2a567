package cluster

// The scripts run in Redis, each one atomic. They name their keys from
// the prefix (ARGV[1]) rather than in KEYS: parkd runs against one Redis,
// not a Redis Cluster, and which keys a claim reads depends on which
// instances are live.

// Every script first checks that me is still live: a Redis restarted
// empty, or a key that lapsed while me was cut off, is answered {'lost'}
// (me's view is gone until it has re-registered).

// claimScript: ARGV = prefix, me, connId, record, now and give-up time
// (unix ms). Returns {} once connId is me's, or {holder, ending}: the live
// instance that holds it, and 1 if that one's request has reached its end
// (its release is due). A claim that arrives after its claimer gave up
// ({'late'}) claims nothing: its park was refused.
const claimScript = `
local p, me, id = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[6]) then return {'late'} end
if redis.call('EXISTS', p .. ':inst:' .. me) == 0 then return {'lost'} end
for _, name in ipairs(redis.call('SMEMBERS', p .. ':instances')) do
  if name ~= me and redis.call('EXISTS', p .. ':inst:' .. name) == 1 then
    local rec = redis.call('HGET', p .. ':parked:' .. name, id)
    if rec then
      local f = {}
      for v in string.gmatch(rec, '([^|]*)|') do f[#f + 1] = tonumber(v) end
      local ending = 0
      if f[2] and f[3] and f[4] and f[2] + f[3] + f[4] <= tonumber(ARGV[5]) then ending = 1 end
      return {name, ending}
    end
  end
end
redis.call('HSET', p .. ':parked:' .. me, id, ARGV[4])
return {}
`

// findScript: ARGV = prefix, me, connId. Returns {instance, record} of the
// live instance but me that holds connId, or {}.
const findScript = `
local p, me, id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', p .. ':inst:' .. me) == 0 then return {'lost'} end
for _, name in ipairs(redis.call('SMEMBERS', p .. ':instances')) do
  if name ~= me then
    if redis.call('EXISTS', p .. ':inst:' .. name) == 1 then
      local rec = redis.call('HGET', p .. ':parked:' .. name, id)
      if rec then return {name, rec} end
    end
  end
end
return {}
`

// releaseIfScript: KEYS = an instance's hash; ARGV = connId, record.
// Removes connId while its record is that one.
const releaseIfScript = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`

// cleanScript: ARGV = prefix. Forgets the instances whose heartbeat has
// lapsed, and what they held.
const cleanScript = `
local p = ARGV[1]
for _, name in ipairs(redis.call('SMEMBERS', p .. ':instances')) do
  if redis.call('EXISTS', p .. ':inst:' .. name) == 0 then
    redis.call('DEL', p .. ':parked:' .. name, p .. ':ver:' .. name)
    redis.call('SREM', p .. ':instances', name)
  end
end
return 0
`
