-- Add one listing page's selected images to a batch as accepted items, atomically with the batch's counts, total
-- and selection progress. The page applies only while the selection is expanding and only if it starts at the
-- marker the batch expects: a redelivered page (or one sent again after a lost reply) changes nothing. An image
-- already in the batch (the seen set: images of the batch's own items and of earlier pages) is skipped. Each item
-- created gets its position: its index in the batch's items list.
-- Uses lib/new_item.lua: each item stored.
-- Uses lib/batch_end.lua: the last page may end the batch (every item it had is terminal, and it adds none).
--
-- KEYS[1]      P:batch:<batch>          hash
-- KEYS[2]      P:batch:<batch>:items    list
-- KEYS[3]      P:batch:<batch>:counts   hash
-- KEYS[4]      P:batch:<batch>:seen     set
-- KEYS[5]      P:state:accepted         zset
-- KEYS[6]      P:expanding              zset
-- KEYS[5+2i]   P:item:<id of candidate i>      hash
-- KEYS[6+2i]   P:item:<id of candidate i>:log  list
-- ARGV[1] batch ID, ARGV[2] marker this page started at, ARGV[3] next marker, ARGV[4] images listed,
-- ARGV[5] images matched, ARGV[6] "1" when this is the last page, ARGV[7] now, ARGV[8] history entry (JSON),
-- ARGV[9] message ("" for none), ARGV[10] n candidates; then per candidate: item ID, image ID, number of fields,
-- field/value pairs.
-- Returns {'ok'|'stale'|'stopped', items created}.
local batch_id, now, n = ARGV[1], ARGV[7], tonumber(ARGV[10])
if redis.call('HGET', KEYS[1], 'sel_state') ~= 'expanding' then return {'stopped', 0} end
if (redis.call('HGET', KEYS[1], 'sel_marker') or '') ~= ARGV[2] then return {'stale', 0} end
local created, pos = 0, 11
for i = 1, n do
  local item_id, image_id, nfields = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  if redis.call('SADD', KEYS[4], image_id) == 1 then
    store_new_item(KEYS[5 + 2 * i], KEYS[6 + 2 * i], KEYS[2], KEYS[5], item_id, pos + 3, nfields, ARGV[8], now)
    created = created + 1
  end
  pos = pos + 3 + 2 * nfields
end
if created > 0 then
  redis.call('HINCRBY', KEYS[3], 'accepted', created)
  redis.call('HINCRBY', KEYS[1], 'total', created)
end
redis.call('HINCRBY', KEYS[1], 'sel_created', created)
redis.call('HINCRBY', KEYS[1], 'sel_listed', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'sel_matched', ARGV[5])
redis.call('HSET', KEYS[1], 'sel_marker', ARGV[3], 'sel_errors', 0)
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'sel_message', ARGV[9]) end
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'sel_state', 'done')
  redis.call('ZREM', KEYS[6], batch_id)
  redis.call('DEL', KEYS[4])
  settle_batch(KEYS[1], KEYS[3], now)
else
  redis.call('ZADD', KEYS[6], now, batch_id)
end
return {'ok', created}
