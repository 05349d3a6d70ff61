-- Keep the smaller of a hash field's number and ARGV[2] (a policy run's oldest uncopied image, noted page by
-- page). A hash that no longer exists (the batch was deleted) is not brought back.
--
-- KEYS[1]  the hash
-- ARGV[1] the field, ARGV[2] the number. Returns 1 if the field changed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and tonumber(current) <= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
