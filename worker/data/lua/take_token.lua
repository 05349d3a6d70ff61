-- Take one token from an account's request-rate bucket, on Redis's clock (workers on hosts with skewed clocks
-- share one timeline). The bucket refills at ARGV[1] tokens a second up to ARGV[2].
--
-- KEYS[1]  P:ratelimit:<account>  hash  tokens, ts
-- ARGV[1] rate, ARGV[2] burst, ARGV[3] longest wait the caller accepts (seconds).
-- Returns (as a string) the seconds to wait before sending (>= 0; the token is reserved, the bucket goes into
-- debt), or minus the seconds to stay away when that wait is longer than ARGV[3] (nothing is taken).
local rate, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
  if wait > max_wait then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
    return tostring(-wait)
  end
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
