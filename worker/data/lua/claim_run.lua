-- Claim a policy's due run, once cluster-wide: only while the policy is active, due, holds no run claimed but not
-- yet recorded, and still at the run number the caller read. Two ticks reading the same policy (two beats, a
-- redelivered tick) both ask for run n + 1: the first advances the number, so the second's claim is refused.
-- A started run stays due (``starting``) until its batch is recorded (record_run.lua), so a crash between the
-- two is finished by the next tick; a skipped run is recorded at once and the next one is due at ARGV[4].
--
-- KEYS[1]  P:policy:<id>         hash
-- KEYS[2]  P:policy:<id>:runs    hash
-- KEYS[3]  P:policies:due        zset
-- ARGV[1] policy ID, ARGV[2] the run number read, ARGV[3] now, ARGV[4] when the run after this one is due,
-- ARGV[5] '1' to record the run as skipped, ARGV[6] the run's record (JSON); ARGV[7] the previous run's batch, ended
-- ('' for none), ARGV[8] the copies it made: added to the policy's total unless that batch was counted already (a
-- run skipped after it saw the same batch), ARGV[9] the receivers' copies its distributions made (added likewise).
-- Returns the run's number, or 0.
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'starting') or '') ~= '' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'runs') or '0') ~= tonumber(ARGV[2]) then return 0 end
local due = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[3]) then return 0 end
local run = tonumber(ARGV[2]) + 1
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'counted') ~= ARGV[7] then
  redis.call('HINCRBY', KEYS[1], 'made', ARGV[8])
  redis.call('HINCRBY', KEYS[1], 'received', ARGV[9])
  redis.call('HSET', KEYS[1], 'counted', ARGV[7])
end
redis.call('HSET', KEYS[1], 'runs', run, 'next_run_at', ARGV[4])
redis.call('HSET', KEYS[2], run, ARGV[6])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'starting', run)
end
return run
