-- Functions of the scripts that change a batch's counts or its selection, put before each of them by
-- worker/data/scripts.py together with TERMINAL, the terminal states (from worker/domain/states.py).
--
-- settle_batch(batch, counts, now): keep the batch's finished_at with its counts. The batch has ended once every
-- item is terminal and no selector is adding items: finished_at is set then, and removed while it runs again (a
-- retry). A batch that is gone (deleted) is left gone. batch: the P:batch:<id> hash key, counts: P:batch:<id>:counts.
local function settle_batch(batch, counts, now)
  local total = redis.call('HGET', batch, 'total')
  if not total then return end
  local ended = 0
  for _, n in ipairs(redis.call('HMGET', counts, unpack(TERMINAL))) do ended = ended + (tonumber(n) or 0) end
  if ended >= tonumber(total) and redis.call('HGET', batch, 'sel_state') ~= 'expanding' then
    redis.call('HSETNX', batch, 'finished_at', now)
  else
    redis.call('HDEL', batch, 'finished_at')
  end
end

-- is_terminal(state): whether an item in that state has ended.
local function is_terminal(state)
  for _, terminal in ipairs(TERMINAL) do
    if terminal == state then return true end
  end
  return false
end
