#!lua name=cloudmanager
-- Redis functions of the wire contract (firmware/PROTOCOL.md §5). Loaded by the manager
-- with FUNCTION LOAD REPLACE on every connect. Every function names only keys of one
-- board, which share the {ID} hash tag, so the library works on Redis Cluster too.

local function parse_id(id)
  -- A stream entry id "ms-seq" as two numbers; nil for anything else (a board may have
  -- written garbage into its own state hash).
  if type(id) ~= 'string' then return nil end
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  if not ms then return nil end
  return tonumber(ms), tonumber(seq)
end

local function id_greater(a, b)
  local ams, aseq = parse_id(a)
  local bms, bseq = parse_id(b)
  if not ams then return false end
  if not bms then return true end
  if ams ~= bms then return ams > bms end
  return aseq > bseq
end

-- cm_claim: the board takes its next command.
-- KEYS[1] = cm:{ID}:cmd   KEYS[2] = cm:{ID}:state
-- ARGV[1] = AFTER: the cursor of the last claim reply this boot saw, or '' right after boot
-- Returns {cursor} when there is nothing to run, else {EID, field1, value1, ...}.
-- An empty (or malformed) AFTER never claims: it only answers where to start (the stored
-- `cur`, or 0-0). Claiming always names an explicit cursor, so a claim whose reply was lost
-- is repeated with the same AFTER and returns the same entry (PROTOCOL.md §4.2).
local function cm_claim(keys, args)
  local after = args[1]
  if after == nil or not parse_id(after) then
    local stored = redis.pcall('HGET', keys[2], 'cur')
    if type(stored) == 'string' and parse_id(stored) then return { stored } end
    return { '0-0' }
  end
  local entries = redis.call('XRANGE', keys[1], '(' .. after, '+', 'COUNT', 1)
  if #entries == 0 then return { after } end
  local id = entries[1][1]
  -- `cur` only moves forward: a repeated claim (AFTER older than `cur`) leaves it be.
  local cur = redis.pcall('HGET', keys[2], 'cur')
  if type(cur) ~= 'string' or id_greater(id, cur) then redis.call('HSET', keys[2], 'cur', id) end
  -- Older entries were claimed before: drop them so the queue holds only what is left.
  redis.call('XTRIM', keys[1], 'MINID', id)
  local reply = { id }
  for _, v in ipairs(entries[1][2]) do reply[#reply + 1] = v end
  return reply
end

-- cm_enqueue: the manager queues a command, at most once per CID.
-- KEYS[1] = cm:{ID}:cmd   KEYS[2] = cm:{ID}:seen   KEYS[3] = cm:{ID}:pending
-- ARGV[1] = CID   ARGV[2] = now (ms, manager clock)   ARGV[3] = max pending commands
-- ARGV[4] = meta JSON kept in the pending hash   ARGV[5..] = field/value pairs of the entry
-- Returns {'ok', EID} or {'duplicate', EID or ''}; error QUEUEFULL when the queue is full.
local function cm_enqueue(keys, args)
  local cid, now, max_pending = args[1], tonumber(args[2]), tonumber(args[3])
  if redis.call('ZSCORE', keys[2], cid) then
    local meta = redis.call('HGET', keys[3], cid)
    local eid = ''
    if meta then eid = cjson.decode(meta).e or '' end
    return { 'duplicate', eid }
  end
  if redis.call('HLEN', keys[3]) >= max_pending then
    return redis.error_reply('QUEUEFULL the board has ' .. max_pending .. ' commands waiting')
  end
  local xadd = { 'XADD', keys[1], '*', 'i', cid }
  for i = 5, #args do xadd[#xadd + 1] = args[i] end
  local eid = redis.call(unpack(xadd))
  local meta = cjson.decode(args[4])
  meta.e = eid
  redis.call('HSET', keys[3], cid, cjson.encode(meta))
  redis.call('ZADD', keys[2], now, cid)
  -- Forget CIDs older than a day; the manager never reuses one within that time.
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', now - 86400000)
  return { 'ok', eid }
end

-- cm_cancel: the manager withdraws a command that the board has not claimed.
-- KEYS[1] = cm:{ID}:cmd   KEYS[2] = cm:{ID}:state   KEYS[3] = cm:{ID}:pending
-- ARGV[1] = CID   ARGV[2] = EID of its queue entry
-- Returns 'cancelled' (removed from the queue, it will never run) or 'claimed' (the board has it).
local function cm_cancel(keys, args)
  local cid, eid = args[1], args[2]
  local cur = redis.pcall('HGET', keys[2], 'cur')
  if type(cur) ~= 'string' then cur = '0-0' end
  if parse_id(cur) and not id_greater(eid, cur) then return 'claimed' end
  redis.call('XDEL', keys[1], eid)
  -- The pending entry stays until the manager records the outcome (cm_finish removes it
  -- and writes the history in one step): a manager that dies in
  -- between finds the command again at its next start and cancels it once more.
  return 'cancelled'
end

-- cm_finish: the manager records finished commands of one board in its history and forgets
-- them as pending, in one step: a command is pending or in the history, never neither.
-- KEYS[1] = cm:{ID}:pending   KEYS[2] = cm:{ID}:log
-- ARGV[1] = history length kept (approximately)
-- ARGV[2] = JSON [[CID, [field1, value1, ...]], ...], oldest first
-- Returns how many commands it recorded. Several commands in one argument: a broadcast's
-- results cost one short call per board, not a MULTI/EXEC of three commands per command
-- (and the manager encodes one string, not two dozen arguments, per board).
local function cm_finish(keys, args)
  local keep = args[1]
  local ok, commands = pcall(cjson.decode, args[2])
  -- Checked first: a script that fails half way keeps what it already did.
  if not ok or type(commands) ~= 'table' then return redis.error_reply('ERR cm_finish: malformed commands') end
  for _, command in ipairs(commands) do
    if type(command) ~= 'table' or type(command[1]) ~= 'string' or type(command[2]) ~= 'table' or #command[2] < 2 or #command[2] % 2 ~= 0 then
      return redis.error_reply('ERR cm_finish: malformed commands')
    end
    for _, v in ipairs(command[2]) do
      if type(v) ~= 'string' then return redis.error_reply('ERR cm_finish: malformed commands') end
    end
  end
  for _, command in ipairs(commands) do
    local xadd = { 'XADD', keys[2], 'MAXLEN', '~', keep, '*' }
    for _, v in ipairs(command[2]) do xadd[#xadd + 1] = v end
    redis.call(unpack(xadd))
    redis.call('HDEL', keys[1], command[1])
  end
  return #commands
end

-- cm_uplink_read: the manager reads a board's uplink with a bound on what it receives.
-- KEYS[1] = cm:{ID}:up
-- ARGV[1] = the last EID read ('0-0' at first)   ARGV[2] = at most this many entries
-- ARGV[3] = the largest entry the protocol allows (bytes of names and values)
-- ARGV[4] = stop adding entries once this many bytes are in the reply (at least one entry)
-- Returns {length of the stream, bytes looked at, entry, entry, ...}: an entry is
-- {EID, {f1, v1, ...}}, or {EID, size} for one over the entry limit, which is deleted here
-- so that neither the manager nor Redis holds it any longer (PROTOCOL.md §6, Limits).
local function cm_uplink_read(keys, args)
  local after, count = args[1], tonumber(args[2])
  local max_entry, max_reply = tonumber(args[3]), tonumber(args[4])
  local length = redis.call('XLEN', keys[1])
  local reply = { length, 0 }
  local seen, held, taken, full = 0, 0, 0, false
  -- A few entries at a time: a board's megabyte entries are never all copied into Lua at once.
  while taken < count and not full do
    local entries = redis.call('XRANGE', keys[1], '(' .. after, '+', 'COUNT', math.min(8, count - taken))
    if #entries == 0 then break end
    for _, entry in ipairs(entries) do
      local size = 0
      for _, v in ipairs(entry[2]) do size = size + #v end
      if size > max_entry then
        redis.call('XDEL', keys[1], entry[1])
        reply[#reply + 1] = { entry[1], size }
      elseif held > 0 and held + size > max_reply then
        full = true
        break
      else
        reply[#reply + 1] = entry
        held = held + size
      end
      seen = seen + size
      taken = taken + 1
      after = entry[1]
    end
  end
  reply[2] = seen
  return reply
end

redis.register_function('cm_claim', cm_claim)
redis.register_function('cm_enqueue', cm_enqueue)
redis.register_function('cm_cancel', cm_cancel)
redis.register_function('cm_finish', cm_finish)
-- allow-oom: at maxmemory this is how the manager drains (and deletes) what boards wrote.
redis.register_function { function_name = 'cm_uplink_read', callback = cm_uplink_read, flags = { 'allow-oom' } }
