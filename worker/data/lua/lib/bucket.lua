-- A token bucket on Redis's clock (clients on hosts with skewed clocks share one timeline), put before each script
-- that takes from one by worker/data/scripts.py.
--
-- redis_now(): Redis's clock, in seconds.
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- take_from_bucket(key, rate, burst, max_wait, now): take one token of the bucket at key (a hash: tokens, ts), which
-- refills at rate tokens a second up to burst. Returns the seconds to wait and whether the token was taken: within
-- max_wait it is (the bucket goes into debt, the caller waits that long), beyond it nothing is taken.
local function take_from_bucket(key, rate, burst, max_wait, now)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  local wait = 0
  if tokens < 1 then
    wait = (1 - tokens) / rate
    if wait > max_wait then
      redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
      return wait, false
    end
  end
  tokens = tokens - 1
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
  return wait, true
end
