-- Set fields on an item only while it is still in the expected state (a job's progress, say): a step that lost
-- a race never writes over the state another step moved the item to.
--
-- KEYS[1]  P:item:<id>  hash
-- ARGV[1] expected state, then field/value pairs. Returns 1 if set, 0 if the item has moved on.
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
return 1
