-- Applies one event's quantity changes for one SKU, at one or two locations,
-- exactly once. Every key carries the SKU's hash tag, so the call is atomic and
-- lands in one Redis Cluster slot.
--
-- KEYS[1]      the event's mark for this SKU: inventory:applied:{SKU}:EVENT_ID
-- KEYS[2..n]   inventory:live:{SKU}:LOCATION, one per location touched
-- ARGV[1]      the payload digest (what "the same event" means)
-- ARGV[2]      now, Unix milliseconds (updatedAt)
-- ARGV[3]      how long the mark is kept, in seconds (the deduplication window)
-- ARGV[4..]    per location, 7 deltas: onHand allocated reserved damaged
--              picked inTransitIn inTransitOut
--
-- Returns {'applied', RESULT}, {'duplicate', RESULT} when the mark says it was
-- applied before (RESULT is what that first run returned, so a replay makes the
-- same alerts and records the same drift), or {'conflict', DIGEST} when the mark
-- holds another payload's digest. RESULT is, per location in KEYS order,
-- 'onHandBefore:onHandAfter:availableBefore:availableAfter', comma-separated.

local mark = redis.call('GET', KEYS[1])
if mark then
    local separator = string.find(mark, '|', 1, true)
    local digest = string.sub(mark, 1, separator - 1)
    if digest ~= ARGV[1] then
        return {'conflict', digest}
    end
    return {'duplicate', string.sub(mark, separator + 1)}
end

local buckets = {'onHand', 'allocated', 'reserved', 'damaged', 'picked', 'inTransitIn', 'inTransitOut'}
local results = {}
for k = 2, #KEYS do
    local key = KEYS[k]
    local first = 3 + (k - 2) * 7
    -- available is derived here rather than read back: a checkout service may
    -- have moved `reserved` on its own.
    local before = redis.call('HMGET', key, 'onHand', 'allocated', 'reserved')
    local onHandBefore = tonumber(before[1]) or 0
    local availableBefore = onHandBefore - (tonumber(before[2]) or 0) - (tonumber(before[3]) or 0)
    local after = {}
    for b = 1, 7 do
        -- HINCRBY by 0 too: every field exists once a key is touched.
        after[b] = redis.call('HINCRBY', key, buckets[b], ARGV[first + b])
    end
    local available = after[1] - after[2] - after[3]
    redis.call('HSET', key, 'available', available, 'updatedAt', ARGV[2])
    results[#results + 1] = string.format('%d:%d:%d:%d', onHandBefore, after[1], availableBefore, available)
end

local result = table.concat(results, ',')
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. result, 'EX', ARGV[3])
return {'applied', result}
