-- A function of the scripts that add items to a stored batch, put before each of them by worker/data/scripts.py.
--
-- store_new_item(item, log, items, accepted, item_id, first, nfields, entry, now): store a new accepted item, its
-- field/value pairs ARGV[first] .. ARGV[first + 2 * nfields - 1], its history's first entry, its position (its
-- index at the end of the batch's items list) and its place in the accepted state's index. item: P:item:<id>,
-- log: P:item:<id>:log, items: P:batch:<id>:items, accepted: P:state:accepted.
local function store_new_item(item, log, items, accepted, item_id, first, nfields, entry, now)
  local fields = {}
  for j = first, first + 2 * nfields - 1 do fields[#fields + 1] = ARGV[j] end
  redis.call('HSET', item, unpack(fields))
  redis.call('DEL', log)
  redis.call('RPUSH', log, entry)
  redis.call('HSET', item, 'position', redis.call('RPUSH', items, item_id) - 1)
  redis.call('ZADD', accepted, now, item_id)
end
