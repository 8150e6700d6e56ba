-- Disarm the user's alert. ARGV: 1 user  2 alert id. Returns 1, or 0 if it is not the user's
-- (unknown, another user's, or already fired).
local key = 'tf:alert:' .. ARGV[2]
local a = redis.call('HMGET', key, 'user', 'symbol', 'direction')
if a[1] ~= ARGV[1] then
  return 0
end
redis.call('DEL', key)
redis.call('ZREM', 'tf:al:{' .. a[2] .. '}:' .. a[3], ARGV[2])
redis.call('ZREM', 'tf:u:{' .. ARGV[1] .. '}:alerts', ARGV[2])
return 1
