-- Add a distribution's receiver items to their parent's batch as accepted items, atomically with the batch's counts
-- and total, and the parent's count of children not ended (open_children, which move.lua lowers as each ends, so
-- that only the last wakes the parent). An item that exists already (a follow-up sent again after it added them) is
-- left as it is, so a resend adds none twice, nor counts it twice. Each item created gets its position: its index in
-- the batch's items list.
-- Uses lib/new_item.lua: each item stored.
--
-- KEYS[1]      P:batch:<batch>          hash
-- KEYS[2]      P:batch:<batch>:items    list
-- KEYS[3]      P:batch:<batch>:counts   hash
-- KEYS[4]      P:state:accepted         zset
-- KEYS[5]      P:item:<parent>          hash
-- KEYS[4+2i]   P:item:<id of item i>      hash
-- KEYS[5+2i]   P:item:<id of item i>:log  list
-- ARGV[1] now, ARGV[2] history entry (JSON), ARGV[3] n items; then per item: item ID, number of fields, field/value
-- pairs.
-- Returns the number of items created.
local now, n = ARGV[1], tonumber(ARGV[3])
local created, pos = 0, 4
for i = 1, n do
  local item_id, nfields = ARGV[pos], tonumber(ARGV[pos + 1])
  if redis.call('EXISTS', KEYS[4 + 2 * i]) == 0 then
    store_new_item(KEYS[4 + 2 * i], KEYS[5 + 2 * i], KEYS[2], KEYS[4], item_id, pos + 2, nfields, ARGV[2], now)
    created = created + 1
  end
  pos = pos + 2 + 2 * nfields
end
if created > 0 then
  redis.call('HINCRBY', KEYS[3], 'accepted', created)
  redis.call('HINCRBY', KEYS[1], 'total', created)
  redis.call('HINCRBY', KEYS[5], 'open_children', created)
end
return created
