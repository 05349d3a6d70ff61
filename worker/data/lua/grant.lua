-- Grant a pool's free replication slots to its waiting items, fairly between batches: the batch with the lowest
-- pass goes next, and its pass grows by its stride (1 / weight) per slot, so equal batches alternate and a
-- high-priority batch gets more turns. Free slots are the pool's limit, lowered while IMS says it is full
-- (copies of others hold slots) and raised back by one after each raise interval, never above the configured
-- limit; no more than the image quota's headroom; none while the account's circuit is open.
--
-- KEYS[1]  P:slots:<pool>     zset  item ID -> grant time
-- KEYS[2]  P:ring:<pool>      zset  batch ID -> pass
-- KEYS[3]  P:pool:<pool>      hash  effective, raise_at, raise_interval, vt, stride:<batch>
-- KEYS[4]  P.waiting.<pool>\x06\x169 list
-- KEYS[5]  P:health:<account> hash  state ('open' while the circuit is open)
-- KEYS[6]  P:quota:<project>  hash  quota, used, pending (granted since used was read), exhausted, granted (every
--                                  slot ever granted: a read counts the grants made while it was under way by it)
-- KEYS[7]  P:due              zset  item ID -> when its next step is due
-- ARGV[1] configured limit, ARGV[2] now, ARGV[3] most queue entries to look at, ARGV[4] the waiting state,
-- ARGV[5] the item key prefix (P:item:), ARGV[6] the pool's queue key prefix (P:queue:<pool>:), ARGV[7] the open
-- circuit's state name, ARGV[8] the quota's refresh period ('': not checked here), ARGV[9] the headroom from which
-- down it counts as little (the quota is then read every period; with more, every ten periods), ARGV[10] '1' when
-- the pool has a project (a quota of its own).
-- Discovers keys at run time: the chosen batch's queue and each candidate's item hash, named from IDs read
-- inside the script, because which batch and which item come next is only known there (fine on one Redis server
-- or a Sentinel-managed master; not on Redis Cluster, which this project does not use).
-- Returns {stale, IDs granted a slot, their source images, their destination regions ('' in-region)}; stale = 1
-- (and nothing granted) when the quota must be read first.
local limit, now, max_scan = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local waiting, item_prefix, queue_prefix = ARGV[4], ARGV[5], ARGV[6]
if redis.call('HGET', KEYS[5], 'state') == ARGV[7] then return {0, {}, {}, {}} end
if ARGV[8] ~= '' then
  local q = redis.call('HMGET', KEYS[6], 'checked_at', 'quota', 'used', 'pending', 'exhausted')
  if not q[1] then return {1, {}, {}, {}} end
  local headroom = nil
  if q[5] then headroom = 0 elseif q[2] then
    headroom = math.max(0, tonumber(q[2]) - tonumber(q[3] or '0') - tonumber(q[4] or '0'))
  end
  local period = tonumber(ARGV[8])
  if headroom == nil or headroom > tonumber(ARGV[9]) then period = 10 * period end
  if now - tonumber(q[1]) >= period then return {1, {}, {}, {}} end
end
local pool = KEYS[3]
local effective = tonumber(redis.call('HGET', pool, 'effective') or limit)
if effective < limit and now >= tonumber(redis.call('HGET', pool, 'raise_at') or '0') then
  effective = effective + 1  -- probe one slot back; the copy call's answer says whether IMS agrees
  redis.call('HSET', pool, 'raise_at', now + tonumber(redis.call('HGET', pool, 'raise_interval') or '10'))
end
if effective >= limit then
  effective = limit
  redis.call('HDEL', pool, 'effective', 'raise_at', 'raise_interval')
else
  redis.call('HSET', pool, 'effective', effective)
end
local free = effective - redis.call('ZCARD', KEYS[1])
local quota = tonumber(redis.call('HGET', KEYS[6], 'quota') or '-1')
local pending = tonumber(redis.call('HGET', KEYS[6], 'pending') or '0')
if quota >= 0 then
  local headroom = quota - tonumber(redis.call('HGET', KEYS[6], 'used') or '0') - pending
  if headroom < free then free = headroom end
end
if redis.call('HEXISTS', KEYS[6], 'exhausted') == 1 then free = 0 end
local granted, images, regions = {}, {}, {}
local scanned, given = 0, 0
while free > 0 and scanned < max_scan do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #head == 0 then break end
  local batch, pass = head[1], tonumber(head[2])
  local queue = queue_prefix .. batch
  local first = redis.call('ZRANGE', queue, 0, 0)
  if #first == 0 then
    redis.call('ZREM', KEYS[2], batch)
    redis.call('HDEL', pool, 'stride:' .. batch)
  else
    local id = first[1]
    redis.call('ZREM', queue, id)
    redis.call('LPOP', KEYS[4])
    scanned = scanned + 1
    if redis.call('ZCARD', queue) == 0 then
      redis.call('ZREM', KEYS[2], batch)
      redis.call('HDEL', pool, 'stride:' .. batch)
    else
      redis.call('ZADD', KEYS[2], pass + tonumber(redis.call('HGET', pool, 'stride:' .. batch) or '1'), batch)
    end
    redis.call('HSET', pool, 'vt', pass)
    local item = redis.call('HMGET', item_prefix .. id, 'state', 'image_id', 'target_region')
    if item[1] == waiting then
      -- A slot entry it kept from an earlier attempt counts as its grant (its submit is sent again).
      if not redis.call('ZSCORE', KEYS[1], id) then
        redis.call('ZADD', KEYS[1], now, id)
        free = free - 1
        given = given + 1
      end
      redis.call('ZADD', KEYS[7], now, id)  -- its submit is due now: the reconciler resends it if it is lost
      granted[#granted + 1] = id
      images[#images + 1] = item[2] or ''
      regions[#regions + 1] = item[3] or ''
    end
  end
end
if quota >= 0 then redis.call('HSET', KEYS[6], 'pending', pending + given) end
if given > 0 and ARGV[10] == '1' then redis.call('HINCRBY', KEYS[6], 'granted', given) end
return {0, granted, images, regions}
