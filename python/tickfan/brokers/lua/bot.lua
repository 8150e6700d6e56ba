-- Replace a bot's state and announce it. KEYS: 1 tf:events
-- ARGV: 1 user  2 bot id  3 status  4 JSON {bot_id,status,ts,detail}  5 max tf:events length
-- Returns the user's running count after the write (computed in the same atomic step).
local prefix = 'tf:u:{' .. ARGV[1] .. '}:'
redis.call('HSET', prefix .. 'bots', ARGV[2], ARGV[4])
if ARGV[3] == 'running' then
  redis.call('SADD', prefix .. 'running', ARGV[2])
else
  redis.call('SREM', prefix .. 'running', ARGV[2])
end
local running = redis.call('SCARD', prefix .. 'running')
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'k', 'b', 'u', ARGV[1], 'j', ARGV[4], 'c', running)
return running
