-- Let one API request of a principal through, within its request rate: the bucket refills at ARGV[1] tokens a
-- second up to ARGV[2]. One bucket in Redis, so that every API replica takes from the same one.
-- Uses lib/bucket.lua: the bucket itself, on Redis's clock.
--
-- KEYS[1]  P:requests:<principal>  hash  tokens, ts
-- Returns the seconds until a token is there: '0' when this request took one, more when nothing was taken.
local wait, granted = take_from_bucket(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 0, redis_now())
if granted then return '0' end
return tostring(wait)
