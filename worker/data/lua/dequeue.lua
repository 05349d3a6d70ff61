-- Take an item out of its pool: free its slot if it held one, drop it from its batch's queue if it waited (a
-- batch whose queue empties leaves the fair-share ring).
--
-- KEYS[1]  P:slots:<pool>          zset
-- KEYS[2]  P:queue:<pool>:<batch>  zset
-- KEYS[3]  P:ring:<pool>           zset
-- KEYS[4]  P:pool:<pool>           hash
-- KEYS[5]  P.waiting.<pool>\x06\x169 list
-- ARGV[1] item ID, ARGV[2] batch ID. Returns 1 if the item held a slot, else 0.
local id, batch = ARGV[1], ARGV[2]
local held = redis.call('ZREM', KEYS[1], id)
if redis.call('ZREM', KEYS[2], id) == 1 then
  redis.call('LPOP', KEYS[5])
  if redis.call('ZCARD', KEYS[2]) == 0 then
    redis.call('ZREM', KEYS[3], batch)
    redis.call('HDEL', KEYS[4], 'stride:' .. batch)
  end
end
return held
