-- Store a checkpoint of the tick state at log id P and trim the log behind the previous one.
-- KEYS: 1 tf:meta  2 tf:ckpt  3 tf:log.  ARGV: 1 epoch  2 P  3 the state (msgpack).
-- Written only for the current epoch and when P is newer than the stored checkpoint's (a new
-- lease holder behind the last writer changes nothing). The previous checkpoint's position
-- (tf:meta ckpt) becomes the oldest entry kept: a node that loaded it can still read on.
-- Returns 1 if written, 0 if not.
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return 0
end
local function id(text)
  local ms, seq = string.match(text, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local previous = redis.call('HGET', KEYS[1], 'ckpt')
if previous then
  local pms, pseq = id(previous)
  local ms, seq = id(ARGV[2])
  if ms < pms or (ms == pms and seq <= pseq) then
    return 0
  end
end
redis.call('HSET', KEYS[2], 'e', ARGV[1], 'p', ARGV[2], 's', ARGV[3])
redis.call('HSET', KEYS[1], 'ckpt', ARGV[2])
if previous then
  redis.call('XTRIM', KEYS[3], 'MINID', '~', previous)
end
return 1
