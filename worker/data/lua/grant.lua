-- Grant an account's free replication slots to its oldest waiting items; drop queue entries whose item is no
-- longer waiting (cancelled, say) instead of giving them a slot.
--
-- KEYS[1]  P:slots:<account>  zset  item ID -> grant time
-- KEYS[2]  P:wait:<account>   zset  item ID -> arrival
-- ARGV[1] slot limit, ARGV[2] now, ARGV[3] most queue entries to look at, ARGV[4] the waiting state,
-- ARGV[5] the item key prefix (P:item:).
-- Discovers keys at run time: each candidate's item hash, named from the ID popped off the queue, because which
-- items are at the head is only known inside the script (fine on one Redis server or a Sentinel-managed
-- master; not on Redis Cluster, which this project does not use).
-- Returns the IDs granted a slot.
local limit, now, max_scan, waiting, item_prefix = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local granted = {}
local scanned = 0
while redis.call('ZCARD', KEYS[1]) < limit and scanned < max_scan do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #head == 0 then break end
  local id = head[1]
  redis.call('ZREM', KEYS[2], id)
  scanned = scanned + 1
  if redis.call('HGET', item_prefix .. id, 'state') == waiting and not redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], now, id)
    granted[#granted + 1] = id
  end
end
return granted
