-- wrk script of bench/screen.py: POST one prepared JSON body per request.
-- WRK_BODIES: a file of request bodies, one a line, cycled through (each connection thread
-- from its own offset); every "__EID__" in a body is replaced by a number unique to the
-- request (fresh event and account ids on every request, however often the file cycles).
-- WRK_KEY: the API key. WRK_THINK_MS (optional): each connection waits a random time, exponential
-- with this mean, after an answer before it sends its next request (a client that thinks: the
-- offered load is about connections * 1000 / WRK_THINK_MS requests a second while answers are
-- much faster than that; unset or 0, back to back). Counts answers that are not GraphQL data (an "errors" key, or no
-- "data") and prints one RESULT line of JSON at the end.
local key = os.getenv("WRK_KEY")
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do
  if line ~= "" then bodies[#bodies + 1] = line end
end
local stamp = os.getenv("WRK_STAMP") or "0"
local threads = {}
local n = 0
local sent = 0
errors = 0
errored = ""

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
  thread:set("offset", #threads * 7919)
end

function init(args)
  n = offset or 0
  math.randomseed((id or 1) * 104729 + tonumber(stamp, 16) % 1000003)
end

local think = tonumber(os.getenv("WRK_THINK_MS") or "0")
if think > 0 then
  -- wrk calls delay() before each request when the script defines it: milliseconds to wait.
  function delay()
    return math.floor(-think * math.log(1 - math.random()) + 0.5)
  end
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

function request()
  n = n + 1
  sent = sent + 1
  local body = bodies[(n % #bodies) + 1]
  body = body:gsub("__EID__", stamp .. "-" .. (id or 0) .. "-" .. sent)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) or not body:find('"data"', 1, true) then
    errors = errors + 1
    if errored == "" then errored = body:sub(1, 300) end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local gql_errors = 0
  local first = ""
  for _, t in ipairs(threads) do
    gql_errors = gql_errors + t:get("errors")
    if first == "" then first = t:get("errored") end
  end
  first = first:gsub('[%c"\\]', " ")
  io.write(string.format(
    'RESULT {"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"graphql_errors": %d, "first_error": "%s"}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.status, e.connect + e.read + e.write + e.timeout, gql_errors, first))
end
