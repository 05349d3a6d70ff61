-- Move one item from an allowed source state to a target state, atomically with its batch counts (and the batch's
-- end: finished_at), its state indexes, its history and its due time, so no reader sees them disagree and two racing
-- workers cannot both win.
-- Uses lib/batch_end.lua: an item entering or leaving a terminal state may end its batch, or set it running again.
--
-- KEYS[1]      P:item:<id>            hash
-- KEYS[2]      P:item:<id>:log        list
-- KEYS[3]      P:batch:<batch>:counts hash (state -> items; and 'received': receiver items succeeded)
-- KEYS[4]      P:due                  zset  item ID -> when its next step is due
-- KEYS[5]      P:state:<target>       zset
-- KEYS[6]      P:batch:<batch>        hash
-- KEYS[6+i]    P:state:<source i>     zset, one per allowed source (same order as the sources in ARGV)
-- KEYS[7+n]    P:item:<parent>        hash, only for an item a distribution made: its open_children counts the
--                                     children not ended (add_children.lua sets it), so only the last end wakes it
-- ARGV[1] item ID, ARGV[2] target state, ARGV[3] now, ARGV[4] history entry (JSON), ARGV[5] '1' when the target
-- has no step of its own to wait for (terminal, or waiting for a slot), ARGV[6] n = number of sources,
-- ARGV[7 .. 6+n] the sources, then field/value pairs to set on the item.
-- Returns {'ok'|'refused'|'missing', previous state or '', the parent's open children after an end or a retry
-- or ''}.
local id, target, now, entry, idle, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
local source_index = nil
for i = 1, n do
  if ARGV[6 + i] == current then source_index = i end
end
if not source_index then return {'refused', current} end
local open = ''
local fields = {}
for i = 7 + n, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'state', target, 'updated_at', now, unpack(fields))
if current ~= target then
  redis.call('ZREM', KEYS[6 + source_index], id)
  redis.call('HINCRBY', KEYS[3], current, -1)
  redis.call('HINCRBY', KEYS[3], target, 1)
  -- A distribution's receiver item (ReplicationItem.receives_share: a parent, no target region) that succeeds is
  -- also counted in 'received': the receivers' private copies, told apart from the copies the batch's account made.
  if (target == 'succeeded' or current == 'succeeded') and (redis.call('HGET', KEYS[1], 'parent_id') or '') ~= ''
      and (redis.call('HGET', KEYS[1], 'target_region') or '') == '' then
    redis.call('HINCRBY', KEYS[3], 'received', target == 'succeeded' and 1 or -1)
  end
  redis.call('RPUSH', KEYS[2], entry)
  if is_terminal(current) or is_terminal(target) then settle_batch(KEYS[6], KEYS[3], now) end
  local parent = KEYS[7 + n]
  if parent and is_terminal(current) ~= is_terminal(target) and redis.call('EXISTS', parent) == 1 then
    open = redis.call('HINCRBY', parent, 'open_children', is_terminal(target) and -1 or 1)
  end
end
redis.call('ZADD', KEYS[5], now, id)
-- The step that moved it is at work on it now; it will say when the next step is due (or there is none).
if idle == '1' then redis.call('ZREM', KEYS[4], id) else redis.call('ZADD', KEYS[4], now, id) end
return {'ok', current, open}
