"""The Lua side of the scripting sandbox, as Lua source run once per Lua state (luabridge.py).

Design
------
The chunk receives ``py``, a table of Python callbacks, and returns ``compile`` and ``run``.
Everything a script can reach is built here:

* Globals are a read-only proxy table (Redis 7.0.15's readonly globals): reading a missing
  name raises "Script attempted to access nonexistent global variable", assigning raises
  "Attempt to modify a readonly table". ``KEYS`` and ``ARGV`` are set into it by ``run``
  with the real ``rawset``, which scripts do not get (theirs refuses the proxy). Library
  tables (string, math, redis, cjson...) are read-only proxies too, so no script can change
  what the next script sees.
* Gone, as in Redis: ``os``, ``io``, ``debug``, ``package``, ``require``, ``loadfile``,
  ``dofile``, ``print``, ``getfenv``, ``setfenv``, ``newproxy``, ``module``. ``load`` and
  ``loadstring`` refuse binary chunks (Lua 5.1 bytecode can break the VM).
* The instruction-count hook calls ``py.check`` every ``HOOK_EVERY`` instructions; when it
  says stop, the hook raises the abort error, and keeps raising it (``pcall`` is wrapped so a
  script cannot swallow it). Coroutines made by scripts get the same hook.
* Errors leave ``run`` as tables ``{err=..., source=..., line=...}``: the handler records
  where in the user's script the error happened (the first frame of ``@user_script``), which
  Redis prints as "script: <sha>, on @user_script:<line>.".
"""

from __future__ import annotations

__all__ = ["BOOT", "HOOK_EVERY"]

# Redis's hook runs every 100,000 instructions too: about a millisecond of Lua here.
HOOK_EVERY = 100_000

BOOT = r"""
local py = ...
local rawset, rawget, setmetatable, getmetatable, type, error, tostring, select =
      rawset, rawget, setmetatable, getmetatable, type, error, tostring, select
local real_pcall, real_xpcall, unpack, setfenv, loadstring = pcall, xpcall, unpack, setfenv, loadstring
local dbg = debug
local HOOK_EVERY = py.hook_every
local ABORT = {}

local function readonly(t)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error("Attempt to modify a readonly table", 2) end,
    __metatable = false,
  })
end

local function hook()
  if ABORT.msg or py.check() then
    ABORT.msg = ABORT.msg or py.abort_message()
    error({err = ABORT.msg}, 0)
  end
end

local function rethrow_abort(...)
  if ABORT.msg then error({err = ABORT.msg}, 0) end
  return ...
end

local base = {}
for _, name in ipairs({"assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget",
                       "select", "tonumber", "tostring", "type", "unpack", "gcinfo",
                       "getmetatable", "setmetatable", "collectgarbage", "_VERSION"}) do
  base[name] = _G[name]
end
local function as_table(ok, ...)
  if not ok then
    local e = ...
    if type(e) == "userdata" then e = {err = py.error_text(e)} end
    return rethrow_abort(false, e)
  end
  return rethrow_abort(ok, ...)
end
base.pcall = function(...) return as_table(real_pcall(...)) end
base.xpcall = function(...) return rethrow_abort(real_xpcall(...)) end
local function no_bytecode(chunk, name)
  if type(chunk) == "string" and chunk:byte(1) == 27 then
    return nil, "attempt to load a binary chunk"
  end
  if type(chunk) ~= "string" then return nil, "only string chunks can be loaded" end
  local f, e = loadstring(chunk, name)
  if f then setfenv(f, py.env) end
  return f, e
end
base.loadstring = no_bytecode
base.load = no_bytecode

local co = {}
for k, v in pairs(coroutine) do co[k] = v end
co.create = function(f)
  local c = coroutine.create(f)
  dbg.sethook(c, hook, "", HOOK_EVERY)
  return c
end
co.wrap = function(f)
  local c = co.create(f)
  return function(...)
    local r = {coroutine.resume(c, ...)}
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2)
  end
end

local m = {}
for k, v in pairs(math) do m[k] = v end
-- Redis's deterministic generator (rand48, in Python), with Lua 5.1's range rules.
m.random = function(a, b)
  local r = py.rand()
  if a == nil then return r end
  if b == nil then
    if a < 1 then error("bad argument #1 to 'random' (interval is empty)", 2) end
    return math.floor(r * a) + 1
  end
  if a > b then error("bad argument #2 to 'random' (interval is empty)", 2) end
  return math.floor(r * (b - a + 1)) + a
end
m.randomseed = function(s) py.srand(s) end

local redis = {}
for k, v in pairs(py.redis_consts) do redis[k] = v end
-- Python callables, which Lua calls as C functions: in ``return redis.call(...)`` the script's
-- frame stays on the stack (a Lua function would be a tail call and take the frame, and with
-- it the line Redis names in the error). redis.call raises a Python exception, which reaches
-- Lua as userdata: ``handler`` and ``pcall`` turn it into the {err=...} table Redis raises.
redis.call = py.call
redis.pcall = py.pcall
redis.error_reply = function(e)
  if type(e) ~= "string" then error("wrong number or type of arguments", 2) end
  return {err = e}
end
redis.status_reply = function(s)
  if type(s) ~= "string" then error("wrong number or type of arguments", 2) end
  return {ok = s}
end
redis.sha1hex = function(s)
  if s == nil or select("#", s) ~= 1 then error("wrong number of arguments", 2) end
  return py.sha1hex(tostring(s))
end
redis.log = function(level, ...)
  if select("#", ...) == 0 then error("redis.log() requires two arguments or more.", 2) end
  if type(level) ~= "number" or level < 0 or level > 3 then error("Invalid debug level.", 2) end
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  py.log(level, table.concat(parts, " "))
end
redis.setresp = function(v)
  if v ~= 2 and v ~= 3 then error("RESP version must be 2 or 3.", 2) end
  py.setresp(v)
end
redis.replicate_commands = function() return true end
redis.set_repl = function(flags)
  if type(flags) ~= "number" or flags < 0 or flags > 3 then
    error("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.", 2)
  end
end
redis.breakpoint = function() return false end
redis.debug = function() end

local libs = {string = string, math = m, table = table, coroutine = co,
              redis = redis, cjson = py.cjson, cmsgpack = py.cmsgpack, bit = py.bit,
              struct = py.struct}
for name, lib in pairs(libs) do base[name] = readonly(lib) end
local strmeta = dbg.getmetatable("")
strmeta.__index = base.string
-- The VM reads the string metatable raw, so it stays a plain table; scripts get a read-only
-- view of it, as Redis 7.0.15 gives.
local strmeta_view = readonly(strmeta)
-- Read-only tables (the globals, the libraries) hide their metatable (``__metatable =
-- false``): scripts see a read-only empty one, and setmetatable on them is refused with
-- Redis's words.
local hidden_meta = readonly({})
base.getmetatable = function(o)
  local m = getmetatable(o)
  if m == strmeta then return strmeta_view end
  if m == false then return hidden_meta end
  return m
end
base.setmetatable = function(t, m)
  if getmetatable(t) == false then error("Attempt to modify a readonly table", 2) end
  return setmetatable(t, m)
end

-- FUNCTION LOAD runs a library's body with ``redis`` as the library API (register_function,
-- log, the constants): no redis.call while loading, as Redis's library load.
local LOADING = {on = false, fns = nil}
local lib_redis = {}
for k, v in pairs(py.redis_consts) do lib_redis[k] = v end
lib_redis.log = redis.log
lib_redis.setresp = redis.setresp
lib_redis.register_function = function(a, b)
  if not LOADING.on then
    error("redis.register_function can only be called on FUNCTION LOAD command", 2)
  end
  local name, callback, flags
  if type(a) == "table" then
    if b ~= nil then error("wrong number of arguments to redis.register_function", 2) end
    for k in pairs(a) do
      if k ~= "function_name" and k ~= "callback" and k ~= "flags" and k ~= "description" then
        error("unknown argument given to redis.register_function", 2)
      end
    end
    name, callback, flags = a.function_name, a.callback, a.flags
  else
    name, callback = a, b
  end
  if type(name) ~= "string" then
    error("function_name argument given to redis.register_function must be a string", 2)
  end
  if type(callback) ~= "function" then
    error("callback argument given to redis.register_function must be a function", 2)
  end
  local fl = {}
  if flags ~= nil then
    if type(flags) ~= "table" then
      error("flags argument to redis.register_function must be a table representing function flags", 2)
    end
    for i, f in ipairs(flags) do
      if type(f) ~= "string" then error("unknown flag given", 2) end
      fl[i] = f
    end
  end
  LOADING.fns[#LOADING.fns + 1] = {name, callback, fl}
end
local lib_redis_view = readonly(lib_redis)

local env = {}
base._G = env
setmetatable(env, {
  __index = function(_, k)
    if k == "redis" and LOADING.on then return lib_redis_view end
    local v = base[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
  __metatable = false,
})
base.rawset = function(t, k, v)
  if t == env or getmetatable(t) == false then error("Attempt to modify a readonly table", 2) end
  return rawset(t, k, v)
end
py.env = env

local function handler(err)
  local level, info = 2, nil
  while true do
    local i = dbg.getinfo(level, "Sl")
    if not i then break end
    if i.source == "@user_script" or i.source == "@user_function" then info = i break end
    level = level + 1
  end
  if type(err) == "userdata" then
    err = {err = py.error_text(err)}
  elseif type(err) ~= "table" or type(rawget(err, "err")) ~= "string" then
    err = {err = "ERR " .. tostring(err)}
  end
  local out = {err = err.err}
  if info then
    out.source = info.source
    out.line = info.currentline
  end
  return out
end

local function compile(body)
  if body:byte(1) == 27 then return nil, "user_script: attempt to load a binary chunk" end
  local f, e = loadstring(body, "@user_script")
  if not f then return nil, e end
  setfenv(f, env)
  return f, false
end

-- The hook stays set: between scripts py.check answers at once (no script is running).
dbg.sethook(hook, "", HOOK_EVERY)

local function run(f, nkeys, ...)
  ABORT.msg = nil
  local all, keys, argv = {...}, {}, {}
  for i = 1, nkeys do keys[i] = all[i] end
  for i = nkeys + 1, select("#", ...) do argv[i - nkeys] = all[i] end
  rawset(env, "KEYS", keys)
  rawset(env, "ARGV", argv)
  py.arm()
  local ok, result = real_xpcall(f, handler)
  py.disarm()
  rawset(env, "KEYS", nil)
  rawset(env, "ARGV", nil)
  -- the abort's own error, wherever a pcall inside the script made it surface
  if not ok and ABORT.msg and (type(result) ~= "table" or result.err ~= ABORT.msg) then
    result = {err = ABORT.msg}
  end
  return ok, result
end

-- FUNCTION LOAD: the functions a library registers ({name, callback, flags} each), or nil and
-- the error.
local function load_library(body)
  if body:byte(1) == 27 then return nil, "user_function: attempt to load a binary chunk" end
  local f, e = loadstring(body, "@user_function")
  if not f then return nil, e end
  setfenv(f, env)
  ABORT.msg = nil
  LOADING.on, LOADING.fns = true, {}
  py.arm()
  local ok, err = real_pcall(f)
  py.disarm()
  local fns = LOADING.fns
  LOADING.on, LOADING.fns = false, nil
  if not ok then
    if ABORT.msg then return nil, ABORT.msg end
    if type(err) == "table" and type(rawget(err, "err")) == "string" then err = err.err end
    if type(err) == "userdata" then err = py.error_text(err) end
    return nil, tostring(err)
  end
  return fns, false
end

-- FCALL: a registered function gets KEYS and ARGV as its two arguments (no globals).
local function fcall(f, nkeys, ...)
  ABORT.msg = nil
  local all, keys, argv = {...}, {}, {}
  for i = 1, nkeys do keys[i] = all[i] end
  for i = nkeys + 1, select("#", ...) do argv[i - nkeys] = all[i] end
  py.arm()
  local ok, result = real_xpcall(function() return f(keys, argv) end, handler)
  py.disarm()
  if not ok and ABORT.msg and (type(result) ~= "table" or result.err ~= ABORT.msg) then
    result = {err = ABORT.msg}
  end
  return ok, result
end

return compile, run, load_library, fcall
"""
