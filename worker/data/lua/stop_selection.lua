-- End a batch's selection that is still expanding (cancelled by the user, or failed), so no later page adds
-- items: the page script refuses once the state is no longer 'expanding'.
-- Uses lib/batch_end.lua: that may end the batch (every item it has is terminal).
--
-- KEYS[1]  P:batch:<batch>        hash
-- KEYS[2]  P:batch:<batch>:seen   set
-- KEYS[3]  P:expanding            zset
-- KEYS[4]  P:batch:<batch>:counts hash
-- ARGV[1] batch ID, ARGV[2] the new state ('cancelled' or 'failed'), ARGV[3] message, ARGV[4] now. Returns 1 if it
-- stopped it.
if redis.call('HGET', KEYS[1], 'sel_state') ~= 'expanding' then return 0 end
redis.call('HSET', KEYS[1], 'sel_state', ARGV[2], 'sel_message', ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
settle_batch(KEYS[1], KEYS[4], ARGV[4])
return 1
