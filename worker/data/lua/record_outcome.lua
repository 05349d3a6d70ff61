-- Count one answer of the cloud, and keep the account's circuit: consecutive transient failures (no answer, a 5xx,
-- a gateway 429) open it; while open, a failed probe doubles the wait for the next one (up to a cap); any real
-- answer closes it and adds the outage to the account's outage seconds (deadlines leave those out).
--
-- KEYS[1]  P:ims:outcomes         hash  "<endpoint>:<outcome>" -> count
-- KEYS[2]  P:health:<account>     hash  state, failures, opened_at, probe_at, interval, probe_taken_at, outage
-- ARGV[1] "<endpoint>:<outcome>", ARGV[2] 'answer' | 'transient' | 'neither', ARGV[3] failures that open the
-- circuit, ARGV[4] first probe interval, ARGV[5] longest probe interval, ARGV[6] the open state name.
-- Returns 'opened', 'closed' or ''.
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local kind, open = ARGV[2], ARGV[6]
if kind == 'neither' then return '' end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = KEYS[2]
local is_open = redis.call('HGET', h, 'state') == open
if kind == 'answer' then
  if is_open then
    local outage = now - tonumber(redis.call('HGET', h, 'opened_at') or tostring(now))
    redis.call('HINCRBYFLOAT', h, 'outage', outage)
    redis.call('HDEL', h, 'state', 'opened_at', 'probe_at', 'interval', 'probe_taken_at')
    redis.call('HSET', h, 'failures', 0)
    return 'closed'
  end
  if redis.call('HGET', h, 'failures') ~= '0' then redis.call('HSET', h, 'failures', 0) end
  return ''
end
if is_open then
  if redis.call('HEXISTS', h, 'probe_taken_at') == 1 then  -- most likely the probe's own answer
    local interval = math.min(tonumber(ARGV[5]), 2 * tonumber(redis.call('HGET', h, 'interval') or ARGV[4]))
    redis.call('HSET', h, 'interval', tostring(interval), 'probe_at', tostring(now + interval))
    redis.call('HDEL', h, 'probe_taken_at')
  end
  return ''
end
if redis.call('HINCRBY', h, 'failures', 1) >= tonumber(ARGV[3]) then
  redis.call('HSET', h, 'state', open, 'opened_at', tostring(now), 'interval', ARGV[4],
    'probe_at', tostring(now + tonumber(ARGV[4])))
  return 'opened'
end
return ''
