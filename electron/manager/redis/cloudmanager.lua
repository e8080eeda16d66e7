#!lua name=cloudmanager
-- Redis functions of the wire contract (firmware/PROTOCOL.md §5). Loaded by the manager
-- (function-library.ts: where missing, or by the active manager over another version's).
-- Every function names only keys of one board, which share the {ID} hash tag, so the
-- library works on Redis Cluster too; the two *_many functions take the keys of many
-- boards in ARGV and are sent to the node that serves them.

local function parse_id(id)
  -- A stream entry id "ms-seq" as two numbers; nil for anything else (a board may have
  -- written garbage into its own state hash).
  if type(id) ~= 'string' then return nil end
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  if not ms then return nil end
  return tonumber(ms), tonumber(seq)
end

-- The reason of an error raised by redis.call (a table {err = ...} since Redis 7).
local function error_text(e)
  if type(e) == 'table' and e.err then return e.err end
  return tostring(e)
end

-- Deletes the entries of a queue up to and including the one with id ms-seq: XTRIM MINID
-- keeps its argument, so it gets that id's successor. Ids past 2^53 are left alone, so no
-- float formatting reaches XTRIM (a board may claim with any AFTER).
local function trim_through(queue, ms, seq)
  if ms < 2 ^ 53 and seq < 2 ^ 53 then redis.call('XTRIM', queue, 'MINID', string.format('%d-%d', ms, seq + 1)) end
end

local function id_greater(a, b)
  local ams, aseq = parse_id(a)
  local bms, bseq = parse_id(b)
  if not ams then return false end
  if not bms then return true end
  if ams ~= bms then return ams > bms end
  return aseq > bseq
end

-- Fencing (several managers on one Redis, docs/ARCHITECTURE.md "Several managers"): the
-- functions with which the active manager changes a board's data destructively take its
-- lease epoch and the board's manager-only key cm:{ID}:fence, the highest epoch that acted
-- on the board. An older epoch is refused with STALE before anything is done, so a manager
-- that lost its lease (paused, cut off) cannot delete what the new active one has not read.
-- An empty epoch (a caller without a lease) is not fenced.
local function fence_error(fence_key, epoch)
  if epoch == nil or epoch == '' then return nil end
  local wanted = tonumber(epoch)
  if not wanted then return redis.error_reply('ERR malformed manager epoch') end
  local held = tonumber(redis.call('GET', fence_key) or '0') or 0
  if held > wanted then
    return redis.error_reply('STALE manager epoch ' .. epoch .. ' was superseded by epoch ' .. held)
  end
  if held < wanted then redis.call('SET', fence_key, epoch) end
  return nil
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
  local after_ms, after_seq = parse_id(after)
  if not after_ms then
    local stored = redis.pcall('HGET', keys[2], 'cur')
    if type(stored) == 'string' and parse_id(stored) then return { stored } end
    return { '0-0' }
  end
  local entries = redis.call('XRANGE', keys[1], '(' .. after, '+', 'COUNT', 1)
  if #entries == 0 then
    -- The board has the reply that claimed the entries up to AFTER (its cursor only moves
    -- forward, and a reboot starts from `cur`), so it never asks for them again: delete
    -- them. An idle board's queue is then empty and holds no stream node (a 1 KB one in
    -- Redis, for the last command it ran).
    trim_through(keys[1], after_ms, after_seq)
    return { after }
  end
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
  -- The meta gets `e` by splicing, not decoding and encoding it again: a broadcast enqueues
  -- thousands in one go (JSON readers take the last of a repeated name, so `e` wins).
  local meta = args[4]
  if type(meta) ~= 'string' or string.sub(meta, 1, 1) ~= '{' or string.sub(meta, -1) ~= '}' then
    return redis.error_reply('ERR cm_enqueue: meta must be a JSON object')
  end
  local xadd = { 'XADD', keys[1], '*', 'i', cid }
  for i = 5, #args do xadd[#xadd + 1] = args[i] end
  local eid = redis.call(unpack(xadd))
  local body = string.sub(meta, 2, -2)
  local comma = string.find(body, '%S') and ',' or ''
  redis.call('HSET', keys[3], cid, '{' .. body .. comma .. '"e":"' .. eid .. '"}')
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
-- KEYS[1] = cm:{ID}:pending   KEYS[2] = cm:{ID}:log   KEYS[3] = cm:{ID}:cmd
-- KEYS[4] = cm:{ID}:fence (optional)
-- ARGV[1] = history length kept (approximately)
-- ARGV[2] = JSON [[CID, [field1, value1, ...]], ...], oldest first
-- ARGV[3] = the manager's lease epoch (with KEYS[4]); error STALE, nothing done, when superseded
-- ARGV[4] = the EID of the newest of these commands whose result the board sent, or '': the
-- board had that entry's claim reply before it ran it, so it never asks for the entries up
-- to it again (PROTOCOL.md §4.2) and they are deleted from the queue. A board waits for
-- work after a command without claiming, so this is what empties an idle board's queue.
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
  local ran_ms, ran_seq = parse_id(args[4])
  if args[4] ~= nil and args[4] ~= '' and not ran_ms then return redis.error_reply('ERR cm_finish: malformed EID') end
  if keys[4] then
    local stale = fence_error(keys[4], args[3])
    if stale then return stale end
  end
  for _, command in ipairs(commands) do
    local xadd = { 'XADD', keys[2], 'MAXLEN', '~', keep, '*' }
    for _, v in ipairs(command[2]) do xadd[#xadd + 1] = v end
    redis.call(unpack(xadd))
    redis.call('HDEL', keys[1], command[1])
  end
  if ran_ms then trim_through(keys[3], ran_ms, ran_seq) end
  return #commands
end

-- cm_batch: several calls of the functions above, each for its own board, in one FCALL:
-- at a broadcast the manager queues and records thousands of commands within a few ms,
-- and each call of its own cost a round of argument parsing, a reply and, in the manager,
-- a command object and a promise. The keys travel in ARGV (the boards' slots differ; a
-- Cluster refuses to route declared keys of several slots); the manager sends a batch to
-- the node serving its boards. No allow-oom: at maxmemory the batch is refused as each of
-- its calls would be.
-- ARGV = for each call in turn: function name, key count, keys…, argument count, arguments…
-- A call named '=' takes one argument: it repeats the previous call's function and arguments
-- with that first argument instead. A broadcast's thousands of cm_enqueue calls differ only
-- in their keys and CID: sent so, a print(1) to a board is about 140 bytes, not 350 (less
-- for Redis to read and the manager to build: measured at 10,000 boards, the manager's CPU
-- per broadcast went from 1.8-2.2 s to 1.7-1.8 s and its peak RSS down by 20 MB).
-- Returns for each call {1, its reply} or {0, its error} (a key not served by this node,
-- "non local key", fails that call alone; the manager sends it again on its own).
local batchable = { cm_enqueue = cm_enqueue, cm_cancel = cm_cancel, cm_finish = cm_finish }

local function cm_batch(_, args)
  local replies, i = {}, 1
  local last_name, last_args
  while i <= #args do
    local name, nkeys = args[i], tonumber(args[i + 1])
    if not nkeys then return redis.error_reply('ERR cm_batch: malformed call') end
    local call_keys = { unpack(args, i + 2, i + 1 + nkeys) }
    local nargs = tonumber(args[i + 2 + nkeys])
    if not nargs then return redis.error_reply('ERR cm_batch: malformed call') end
    local call_args = { unpack(args, i + 3 + nkeys, i + 2 + nkeys + nargs) }
    i = i + 3 + nkeys + nargs
    if name == '=' then
      if not last_args or nargs ~= 1 then return redis.error_reply('ERR cm_batch: malformed call') end
      local repeated = { call_args[1] }
      for k = 2, #last_args do repeated[k] = last_args[k] end
      name, call_args = last_name, repeated
    end
    last_name, last_args = name, call_args
    local fn = batchable[name]
    if not fn then
      replies[#replies + 1] = { 0, 'ERR cm_batch: not a batchable function' }
    else
      local ok, reply = pcall(fn, call_keys, call_args)
      if not ok then
        replies[#replies + 1] = { 0, error_text(reply) }
      elseif type(reply) == 'table' and reply.err then
        replies[#replies + 1] = { 0, reply.err }
      else
        replies[#replies + 1] = { 1, reply }
      end
    end
  end
  return replies
end

-- cm_uplink_read: the manager reads a board's uplink with a bound on what it receives.
-- KEYS[1] = cm:{ID}:up   KEYS[2] = cm:{ID}:state   KEYS[3] = cm:{ID}:fence (optional)
-- ARGV[1] = the last EID read ('0-0' at first)   ARGV[2] = at most this many entries
-- ARGV[3] = the largest entry the protocol allows (bytes of names and values)
-- ARGV[4] = stop adding entries once this many bytes are in the reply (at least one entry)
-- ARGV[5] = the manager's lease epoch (with KEYS[3]); error STALE, nothing read or deleted, when superseded
-- Returns {length of the stream, bytes looked at, fields of the state hash, its bytes,
-- entry, entry, ...}: an entry is {EID, {f1, v1, ...}}, or {EID, size} for one over the
-- entry limit, which is deleted here so that neither the manager nor Redis holds it any
-- longer (PROTOCOL.md §6, Limits). The state hash's size rides along for the manager's
-- budget check (a board writes that hash too; the manager reads the board when it does).
-- read_uplink is that read without the fencing; it also returns the bytes of entries replied.
local function read_uplink(up, state, after, count, max_entry, max_reply)
  local length = redis.call('XLEN', up)
  local state_bytes = redis.call('MEMORY', 'USAGE', state, 'SAMPLES', '5') or 0
  -- A state key that is no hash (a board's doing) counts by its bytes alone.
  local hash, state_fields = pcall(redis.call, 'HLEN', state)
  local reply = { length, 0, hash and state_fields or 0, state_bytes }
  local seen, held, taken, full = 0, 0, 0, false
  -- A few entries at a time: a board's megabyte entries are never all copied into Lua at once.
  while taken < count and not full do
    local asked = math.min(8, count - taken)
    local entries = redis.call('XRANGE', up, '(' .. after, '+', 'COUNT', asked)
    for _, entry in ipairs(entries) do
      local size = 0
      for _, v in ipairs(entry[2]) do size = size + #v end
      if size > max_entry then
        redis.call('XDEL', up, entry[1])
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
    -- Fewer than asked: that was the end of the stream (no XRANGE more to find nothing, which
    -- was one call per board read: 10,000 per broadcast to 10,000 boards).
    if #entries < asked then break end
  end
  reply[2] = seen
  return reply, held
end

local function cm_uplink_read(keys, args)
  if keys[3] then
    local stale = fence_error(keys[3], args[5])
    if stale then return stale end
  end
  return (read_uplink(keys[1], keys[2], args[1], tonumber(args[2]), tonumber(args[3]), tonumber(args[4])))
end

-- How many ARGV each board takes from `from` on: `base`, and one more, its fence, the
-- `fence_at`th, when `epoch` is set. Every fence is checked before anything is done; the
-- first STALE is returned second.
local function board_args(args, from, base, fence_at, epoch)
  if epoch == nil or epoch == '' then return base, nil end
  local per = base + 1
  for i = from + fence_at - 1, #args, per do
    local stale = fence_error(args[i], epoch)
    if stale then return per, stale end
  end
  return per, nil
end

-- cm_uplink_read_many: cm_uplink_read for several boards in one call. Saves a call per board
-- on the busiest path there is (every heartbeat and result is read). The keys travel in ARGV,
-- none declared: they are of many slots, which a Cluster refuses to route; the manager sends
-- the call to the node serving them (on a Cluster grouped by node), and a key that is not
-- served there (a slot that moved) fails that board alone with "non local key" (read it on
-- its own) or, for a fence, the whole call.
-- ARGV[1..3] = count, largest entry, reply bytes per board (as cm_uplink_read's ARGV[2..4])
-- ARGV[4] = the manager's lease epoch ('' when none)   ARGV[5] = stop reading further boards
-- once this many bytes are in the reply (at least one board is read)   ARGV[6..] = for each
-- board in turn: cm:{ID}:up, cm:{ID}:state, cm:{ID}:fence (only when ARGV[4] is set), and
-- its last EID read. STALE for any board: nothing read, nothing deleted.
-- Returns one reply a board read, in order, each as cm_uplink_read's, or {'error', reason}
-- for a board whose uplink could not be read (the others go on); boards left unread by
-- ARGV[5] are missing from the end.
local function cm_uplink_read_many(_, args)
  local count, max_entry, max_reply = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
  local max_total = tonumber(args[5])
  local per, stale = board_args(args, 6, 3, 3, args[4])
  if stale then return stale end
  local replies, total, board = {}, 0, 0
  for first = 6, #args, per do
    if board > 0 and total >= max_total then break end
    board = board + 1
    local ok, reply, held = pcall(read_uplink, args[first], args[first + 1], args[first + per - 1], count, max_entry, max_reply)
    if ok then
      replies[board] = reply
      total = total + held
    else
      replies[board] = { 'error', error_text(reply) }
    end
  end
  return replies
end

-- cm_uplink_trim: the manager deletes the uplink entries it has handled.
-- KEYS[1] = cm:{ID}:up   KEYS[2] = cm:{ID}:fence
-- ARGV[1] = delete entries before this id (MINID)   ARGV[2] = the manager's lease epoch
local function cm_uplink_trim(keys, args)
  local stale = fence_error(keys[2], args[2])
  if stale then return stale end
  return redis.call('XTRIM', keys[1], 'MINID', args[1])
end

-- cm_uplink_trim_many: cm_uplink_trim for several boards in one call, keys in ARGV as for
-- cm_uplink_read_many. ARGV[1] = the manager's lease epoch ('' when none)   ARGV[2..] = for
-- each board in turn: cm:{ID}:up, cm:{ID}:fence (only when ARGV[1] is set), its MINID.
-- STALE for any board: nothing deleted. A key that cannot be trimmed (wrong type, or no
-- longer served by this node) is passed over: its entries are deleted by a later trim.
-- Returns the entries deleted.
local function cm_uplink_trim_many(_, args)
  local per, stale = board_args(args, 2, 2, 2, args[1])
  if stale then return stale end
  local deleted = 0
  for first = 2, #args, per do
    local ok, n = pcall(redis.call, 'XTRIM', args[first], 'MINID', args[first + per - 1])
    if ok then deleted = deleted + n end
  end
  return deleted
end

-- The manager lease: one active manager per Redis (docs/ARCHITECTURE.md "Several managers").
-- Only {mgr} keys, one slot. KEYS[1] = cm:{mgr}:lease   KEYS[2] = cm:{mgr}:epoch

-- cm_lease_acquire: ARGV[1] = manager id   ARGV[2] = TTL (ms)   ARGV[3] = JSON of the holder
-- (host, pid, apiUrl, since)   ARGV[4] = the epoch this manager holds ('' when none).
-- Returns {'ok', epoch, value} when the caller holds the lease (acquired: a new epoch, the
-- fencing token; renewed: the same), else {'taken', value, PTTL}. A lease of the caller
-- that expired while nobody else took it (no newer epoch) is renewed with its epoch: a
-- paused process (a laptop asleep) is not a takeover.
local function cm_lease_acquire(keys, args)
  local id, ttl, mine = args[1], tonumber(args[2]), args[4]
  if not ttl or ttl <= 0 then return redis.error_reply('ERR malformed lease TTL') end
  local held = redis.call('GET', keys[1])
  if held then
    local ok, holder = pcall(cjson.decode, held)
    if ok and type(holder) == 'table' and holder.id == id then
      redis.call('PEXPIRE', keys[1], ttl)
      return { 'ok', tostring(holder.epoch), held }
    end
    return { 'taken', held, redis.call('PTTL', keys[1]) }
  end
  local ok, holder = pcall(cjson.decode, args[3])
  if not ok or type(holder) ~= 'table' then return redis.error_reply('ERR malformed lease holder') end
  local epoch
  if mine ~= nil and mine ~= '' and redis.call('GET', keys[2]) == mine then
    epoch = tonumber(mine)
  else
    epoch = redis.call('INCR', keys[2])
  end
  holder.id = id
  holder.epoch = epoch
  local value = cjson.encode(holder)
  redis.call('SET', keys[1], value, 'PX', ttl)
  return { 'ok', tostring(epoch), value }
end

-- cm_lease_release: ARGV[1] = manager id. Deletes the lease only if that manager holds it.
local function cm_lease_release(keys, args)
  local held = redis.call('GET', keys[1])
  if not held then return 0 end
  local ok, holder = pcall(cjson.decode, held)
  if ok and type(holder) == 'table' and holder.id == args[1] then return redis.call('DEL', keys[1]) end
  return 0
end

-- cm_mgr_publish: the active manager's messages to the managers standing by (its events, its
-- answers to their requests: electron/manager/manager-bridge.ts), added to a stream only
-- while the caller's epoch is the newest, so a manager that lost the lease tells nobody
-- anything. KEYS[1] = cm:{mgr}:epoch   KEYS[2] = the stream (a {mgr} key)
-- ARGV[1] = epoch   ARGV[2] = about how many entries to keep   ARGV[3] = the stream's TTL (ms)
-- ARGV[4..] = field, value pairs. Returns the entry id; error STALE, nothing added, when superseded.
local function cm_mgr_publish(keys, args)
  local newest = redis.call('GET', keys[1])
  if newest ~= args[1] then
    return redis.error_reply('STALE manager epoch ' .. tostring(args[1]) .. ' was superseded by epoch ' .. tostring(newest))
  end
  local entry = { keys[2], 'MAXLEN', '~', args[2], '*' }
  for i = 4, #args do entry[#entry + 1] = args[i] end
  local id = redis.call('XADD', unpack(entry))
  redis.call('PEXPIRE', keys[2], args[3])
  return id
end

redis.register_function('cm_claim', cm_claim)
redis.register_function('cm_enqueue', cm_enqueue)
redis.register_function('cm_cancel', cm_cancel)
redis.register_function('cm_finish', cm_finish)
redis.register_function { function_name = 'cm_batch', callback = cm_batch, flags = { 'allow-cross-slot-keys' } }
-- allow-oom: at maxmemory this is how the manager drains (and deletes) what boards wrote.
redis.register_function { function_name = 'cm_uplink_read', callback = cm_uplink_read, flags = { 'allow-oom' } }
redis.register_function { function_name = 'cm_uplink_trim', callback = cm_uplink_trim, flags = { 'allow-oom' } }
redis.register_function { function_name = 'cm_uplink_read_many', callback = cm_uplink_read_many, flags = { 'allow-oom', 'allow-cross-slot-keys' } }
redis.register_function { function_name = 'cm_uplink_trim_many', callback = cm_uplink_trim_many, flags = { 'allow-oom', 'allow-cross-slot-keys' } }
-- allow-oom: a full Redis must not cost the active manager its lease (a few bytes).
redis.register_function { function_name = 'cm_lease_acquire', callback = cm_lease_acquire, flags = { 'allow-oom' } }
redis.register_function { function_name = 'cm_lease_release', callback = cm_lease_release, flags = { 'allow-oom' } }
redis.register_function('cm_mgr_publish', cm_mgr_publish)

-- cm_library_version: which version of this library is loaded (function-library.ts fills in a
-- hash of this source when it loads it): only the active manager replaces another version's.
local LIBRARY_VERSION = '@CM_LIBRARY_VERSION@'
redis.register_function { function_name = 'cm_library_version', callback = function() return LIBRARY_VERSION end, flags = { 'no-writes', 'allow-stale', 'allow-oom' } }
