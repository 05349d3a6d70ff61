-- Let one request of an account go to the cloud: not while its circuit is open (except one probe per probe
-- interval), and within its request rate. The bucket refills at ARGV[1] tokens a second up to ARGV[2].
-- Uses lib/bucket.lua: the bucket itself, on Redis's clock.
--
-- Nothing at all while the account's credentials are on hold (they were refused: IAM locks a key out after a few
-- refusals), checked here rather than in a read of its own before every request.
--
-- Also says whether the circuit has anything to hear of the request's answer (else the caller only counts it).
--
-- KEYS[1]  P:ratelimit:<account>  hash  tokens, ts
-- KEYS[2]  P:health:<account>     hash  state, failures, probe_at, probe_taken_at
-- KEYS[3]  P:hold:<account>       string  why the credentials are on hold (expires with the hold)
-- ARGV[1] rate, ARGV[2] burst, ARGV[3] longest wait the caller accepts (seconds), ARGV[4] the open circuit's
-- state name, ARGV[5] seconds after which a probe that never answered counts as lost.
-- Returns {verdict, seconds, clean}: 'go' after sleeping that many seconds (the token is reserved: the bucket goes
-- into debt), 'rate' to stay away that long (nothing taken), 'circuit' to wait for the circuit's next probe; or
-- {'held', why, clean}. clean = 1: the circuit is closed with no failure counted, so an answer changes nothing.
local health = redis.call('HMGET', KEYS[2], 'state', 'failures')
local clean = 0
if health[1] ~= ARGV[4] and (not health[2] or health[2] == '0') then clean = 1 end
local held = redis.call('GET', KEYS[3])
if held then
  return {'held', held, clean}
end
local now = redis_now()
if health[1] == ARGV[4] then
  local probe_at = tonumber(redis.call('HGET', KEYS[2], 'probe_at') or '0')
  local taken = tonumber(redis.call('HGET', KEYS[2], 'probe_taken_at') or '0')
  if now < probe_at or now < taken + tonumber(ARGV[5]) then
    return {'circuit', tostring(math.max(probe_at, taken + tonumber(ARGV[5])) - now), clean}
  end
  redis.call('HSET', KEYS[2], 'probe_taken_at', tostring(now))  -- this request is the probe
end
local wait, granted = take_from_bucket(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), now)
if not granted then
  return {'rate', tostring(wait), clean}
end
return {'go', tostring(wait), clean}
