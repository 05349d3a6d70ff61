-- Advance an item's chain of polls (or follow-ups) from the expected sequence number, only while it is in the
-- chain's state: of two tasks holding the same number, only one may schedule the next (worker/steps/poll.py).
--
-- KEYS[1]  P:item:<id>  hash
-- ARGV[1] the chain's state, ARGV[2] expected poll_seq, ARGV[3] now. Returns 1 if claimed, else 0.
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'poll_seq') or '0') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'poll_seq', tostring(tonumber(ARGV[2]) + 1), 'updated_at', ARGV[3])
return 1
