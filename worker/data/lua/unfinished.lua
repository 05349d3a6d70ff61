-- How many items of a principal's batches are not yet in a terminal state: the sum of each batch's counts of the
-- non-terminal states. A batch that has ended (finished_at: every item terminal, no selector adding more) or is
-- gone leaves the index here, checked and removed in one step, so that a retry putting it back (``reopen``, after
-- moving its items) is never undone by a count that read it as ended.
--
-- KEYS[1]                      P:running:<principal>  zset  batch ID -> created_at
-- KEYS[2i], KEYS[2i+1]         P:batch:<id>, P:batch:<id>:counts of the i-th batch (hash, hash)
-- ARGV[1] n, ARGV[2..n+1] the non-terminal states, ARGV[n+1+i] the i-th batch's ID.
-- Returns the number of unfinished items.
local n = tonumber(ARGV[1])
local states = {unpack(ARGV, 2, n + 1)}
local unfinished = 0
for i = 1, (#KEYS - 1) / 2 do
  local batch, counts = KEYS[2 * i], KEYS[2 * i + 1]
  if redis.call('EXISTS', batch) == 0 or redis.call('HEXISTS', batch, 'finished_at') == 1 then
    redis.call('ZREM', KEYS[1], ARGV[n + 1 + i])
  else
    for _, count in ipairs(redis.call('HMGET', counts, unpack(states))) do
      unfinished = unfinished + (tonumber(count) or 0)
    end
  end
end
return unfinished
