-- Record the batch of a claimed run (claim_run.lua) and make the policy's next run due. Applies only while that
-- run is the one starting: recorded twice (a tick and a retried one), it changes nothing the second time; a
-- policy deleted meanwhile is not brought back.
--
-- KEYS[1]  P:policy:<id>         hash
-- KEYS[2]  P:policy:<id>:runs    hash
-- KEYS[3]  P:policies:due        zset
-- ARGV[1] policy ID, ARGV[2] run number, ARGV[3] batch ID, ARGV[4] the run's record (JSON). Returns 1 if recorded.
if redis.call('HGET', KEYS[1], 'starting') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'starting')
redis.call('HSET', KEYS[1], 'last_batch', ARGV[3], 'last_started', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
local paused = cjson.decode(redis.call('HGET', KEYS[1], 'definition'))['paused']
local next_at = redis.call('HGET', KEYS[1], 'next_run_at')
if not paused and next_at and next_at ~= '' then redis.call('ZADD', KEYS[3], next_at, ARGV[1]) end
return 1
