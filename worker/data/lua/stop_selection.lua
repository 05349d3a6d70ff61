-- End a batch's selection that is still expanding (cancelled by the user, or failed), so no later page adds
-- items: the page script refuses once the state is no longer 'expanding'.
--
-- KEYS[1]  P:batch:<batch>        hash
-- KEYS[2]  P:batch:<batch>:seen   set
-- KEYS[3]  P:expanding            zset
-- ARGV[1] batch ID, ARGV[2] the new state ('cancelled' or 'failed'), ARGV[3] message. Returns 1 if it stopped it.
if redis.call('HGET', KEYS[1], 'sel_state') ~= 'expanding' then return 0 end
redis.call('HSET', KEYS[1], 'sel_state', ARGV[2], 'sel_message', ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
