-- Arm a price alert. ARGV: 1 user  2 symbol  3 direction  4 level text  5 created_at
-- Returns its id (ids increase and are never reused).
local id = redis.call('INCR', 'tf:alert:next')
redis.call('HSET', 'tf:alert:' .. id, 'user', ARGV[1], 'symbol', ARGV[2], 'direction', ARGV[3], 'level', ARGV[4], 'created_at', ARGV[5])
redis.call('ZADD', 'tf:al:{' .. ARGV[2] .. '}:' .. ARGV[3], ARGV[4], id)
redis.call('ZADD', 'tf:u:{' .. ARGV[1] .. '}:alerts', id, id)
return id
