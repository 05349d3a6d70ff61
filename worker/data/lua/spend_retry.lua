-- Spend one of an item's error retries, unless none is left: checked and spent in one step, so deliveries of its
-- steps that fail side by side never spend more than the budget between them.
--
-- KEYS[1]  P:item:<id>  hash
-- ARGV[1] the budget (retry_max_attempts). Returns the retries spent in this attempt, now; -1 when none was left
-- (or the item is gone).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local spent = tonumber(redis.call('HGET', KEYS[1], 'error_retries') or '0')
if spent >= tonumber(ARGV[1]) then return -1 end
return redis.call('HINCRBY', KEYS[1], 'error_retries', 1)
