-- Queue a waiting item for a slot of its pool, in its batch's queue, kept in the order of the batch's rows (an
-- item validated late still goes ahead of later rows); a batch whose queue was empty joins the pool's fair-share
-- ring, starting one full set of slots behind the pool's virtual time, so a batch that arrives behind a long one
-- can take every slot that frees up next.
--
-- KEYS[1]  P:queue:<pool>:<batch>  zset  item ID -> its position in the batch (arrival, on a record without one)
-- KEYS[2]  P:ring:<pool>           zset  batch ID -> pass
-- KEYS[3]  P:pool:<pool>           hash  vt (virtual time), stride:<batch>
-- KEYS[4]  P.waiting.<pool>\x06\x169 list  one entry per queued item (what Flower counts)
-- ARGV[1] item ID, ARGV[2] its place (position), ARGV[3] batch ID, ARGV[4] the batch's stride (1 / weight),
-- ARGV[5] slot limit.
-- Returns 1 if the item was queued, 0 if it already was (it keeps its first place).
local id, place, batch, stride, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('ZADD', KEYS[1], 'NX', place, id) == 0 then return 0 end
redis.call('RPUSH', KEYS[4], batch)
if not redis.call('ZSCORE', KEYS[2], batch) then
  local vt = tonumber(redis.call('HGET', KEYS[3], 'vt') or '0')
  redis.call('ZADD', KEYS[2], vt - limit * stride, batch)
  redis.call('HSET', KEYS[3], 'stride:' .. batch, tostring(stride))
end
return 1
