-- Arm a price alert. ARGV: 1 user  2 symbol  3 direction  4 level text  5 created_at  6 limit
-- Returns its id (ids increase and are never reused), or 0 if the user already holds `limit`
-- alerts (0: no limit); the count and the insert are one atomic step.
local user_alerts = 'tf:u:{' .. ARGV[1] .. '}:alerts'
local limit = tonumber(ARGV[6])
if limit > 0 and redis.call('ZCARD', user_alerts) >= limit then
  return 0
end
local id = redis.call('INCR', 'tf:alert:next')
redis.call('HSET', 'tf:alert:' .. id, 'user', ARGV[1], 'symbol', ARGV[2], 'direction', ARGV[3], 'level', ARGV[4], 'created_at', ARGV[5])
redis.call('ZADD', 'tf:al:{' .. ARGV[2] .. '}:' .. ARGV[3], ARGV[4], id)
redis.call('ZADD', user_alerts, id, id)
return id
