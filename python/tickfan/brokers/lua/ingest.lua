-- One atomic, idempotent ingest of a validated tick batch into the log (docs/architecture.md).
-- KEYS: 1 tf:meta  2 tf:seq  3 tf:lastts  4 tf:log  5 tf:events  6 idempotency key
-- ARGV: 1 epoch to mint if tf:meta has none  2 idempotency ttl ms  3 MINID for the log trim
--       (ms, 0: none)  4 now ms  5 the ticks as the log stores them  6 max tf:events length
--       7 the ingesting node's id (field o of the entry)  8 n, then n x (symbol, ts, price text)
-- The entry's field p is the id of the entry before it (tf:meta top, '0-0' for an epoch's first):
-- a reader whose last applied id differs knows the log was trimmed past its position.
-- Returns {'ok', log id, epoch} | {'dup', log id, epoch} (an earlier call with this key) |
-- {'err', i1, prev1, i2, prev2, ...}: 0-based indexes whose ts is earlier than the symbol's
-- previous ts, and that ts; nothing was written.
local done = redis.call('GET', KEYS[6])
if done then
  local sep = string.find(done, ' ', 1, true)
  return {'dup', string.sub(done, 1, sep - 1), string.sub(done, sep + 1)}
end
-- The epoch first (as lua/epoch.lua): a new one starts the tick state afresh.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'top', '0-0')
  epoch = ARGV[1]
end
local n = tonumber(ARGV[8])
local syms, tss, prices = {}, {}, {}
for i = 1, n do
  local base = 8 + (i - 1) * 3
  syms[i], tss[i], prices[i] = ARGV[base + 1], tonumber(ARGV[base + 2]), ARGV[base + 3]
end
-- 1. ts against the cluster's last ts, exactly as the core checks it: an item is compared
--    with the previous *valid* item of its symbol.
local order, seen = {}, {}
for i = 1, n do
  if not seen[syms[i]] then
    seen[syms[i]] = true
    order[#order + 1] = syms[i]
  end
end
local stored = redis.call('HMGET', KEYS[3], unpack(order))
local prev = {}
for j, sym in ipairs(order) do
  prev[sym] = tonumber(stored[j]) or -1
end
local errors = {}
for i = 1, n do
  local p = prev[syms[i]]
  if tss[i] < p then
    errors[#errors + 1] = i - 1
    errors[#errors + 1] = string.format('%d', p)
  else
    prev[syms[i]] = tss[i]
  end
end
if #errors > 0 then
  return {'err', unpack(errors)}
end
-- 2. seqs, last ts
local count = {}
for i = 1, n do
  count[syms[i]] = (count[syms[i]] or 0) + 1
end
local last_seq, lastts = {}, {}
for _, sym in ipairs(order) do
  last_seq[#last_seq + 1] = sym .. '=' .. redis.call('HINCRBY', KEYS[2], sym, count[sym])
  lastts[#lastts + 1] = sym
  lastts[#lastts + 1] = string.format('%d', prev[sym])
end
redis.call('HSET', KEYS[3], unpack(lastts))
-- 3. the log entry (trimmed by time when ARGV[3] is set: entries older than the retention go)
local xadd = {'XADD', KEYS[4]}
if ARGV[3] ~= '0' then
  xadd[#xadd + 1], xadd[#xadd + 2], xadd[#xadd + 3] = 'MINID', '~', ARGV[3]
end
for _, v in ipairs({'*', 'e', epoch, 't', ARGV[5], 'q', table.concat(last_seq, ';'), 'o', ARGV[7]}) do
  xadd[#xadd + 1] = v
end
local top = redis.call('HGET', KEYS[1], 'top')
if top then  -- (an epoch begun before entries carried p has none: its entries go unchecked)
  xadd[#xadd + 1], xadd[#xadd + 2] = 'p', top
end
local id = redis.call(unpack(xadd))
redis.call('HSET', KEYS[1], 'top', id)
-- 4. price alerts: fire (once, here) every alert the batch reaches, tick by tick, by alert id
for _, sym in ipairs(order) do
  local above, below = 'tf:al:{' .. sym .. '}:above', 'tf:al:{' .. sym .. '}:below'
  -- prices go to Redis as their text: redis.call would format a Lua number with 14 digits
  local hi, lo, hi_text, lo_text = nil, nil, nil, nil
  for i = 1, n do
    if syms[i] == sym then
      local p = tonumber(prices[i])
      if hi == nil or p > hi then hi, hi_text = p, prices[i] end
      if lo == nil or p < lo then lo, lo_text = p, prices[i] end
    end
  end
  local probe_a = redis.call('ZRANGEBYSCORE', above, '-inf', hi_text, 'LIMIT', 0, 1)
  local probe_b = redis.call('ZRANGEBYSCORE', below, lo_text, '+inf', 'LIMIT', 0, 1)
  if #probe_a > 0 or #probe_b > 0 then
    for i = 1, n do
      if syms[i] == sym then
        local hits = redis.call('ZRANGEBYSCORE', above, '-inf', prices[i])
        for _, h in ipairs(redis.call('ZRANGEBYSCORE', below, prices[i], '+inf')) do
          hits[#hits + 1] = h
        end
        local ids = {}
        for _, h in ipairs(hits) do ids[#ids + 1] = tonumber(h) end
        table.sort(ids)
        for _, alert_id in ipairs(ids) do
          local key = 'tf:alert:' .. alert_id
          local a = redis.call('HMGET', key, 'user', 'direction', 'level')
          redis.call('ZREM', above, alert_id)
          redis.call('ZREM', below, alert_id)
          redis.call('DEL', key)
          if a[1] then
            local user, direction, level = a[1], a[2], a[3]
            redis.call('ZREM', 'tf:u:{' .. user .. '}:alerts', alert_id)
            local relation = direction == 'above' and '>=' or '<='
            local title = sym .. ' ' .. direction .. ' ' .. level
            local body = sym .. ' traded at ' .. prices[i] .. ' (' .. relation .. ' ' .. level .. ')'
            local json = '{"kind":"price_alert","title":"' .. title .. '","body":"' .. body
              .. '","data":{"alert_id":' .. alert_id .. ',"symbol":"' .. sym .. '","price":' .. prices[i]
              .. ',"level":' .. level .. ',"direction":"' .. direction .. '"},"created_at":' .. ARGV[4] .. '}'
            tf_notify(user, json, KEYS[5], ARGV[6])
          end
        end
      end
    end
  end
end
redis.call('SET', KEYS[6], id .. ' ' .. epoch, 'PX', ARGV[2])
return {'ok', id, epoch}
