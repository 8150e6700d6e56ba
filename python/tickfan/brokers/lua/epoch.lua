-- The cluster's epoch, minted when missing. A new epoch starts the tick state afresh: seqs,
-- last ts and the log go with the old one (Redis lost them, or an operator deleted tf:meta to
-- start over). KEYS: 1 tf:meta  2 tf:seq  3 tf:lastts  4 tf:log.  ARGV: 1 the epoch to mint.
-- Returns the epoch.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch then
  return epoch
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'top', '0-0')
return ARGV[1]
