-- wrk script of bench/api.py: POST one GraphQL operation per request.
-- WRK_QUERY: the query as a JSON string; WRK_KEY: the API key; WRK_IDS: a file of ids, one per
-- line, cycled through as the `id` variable (none: no variables); WRK_THINK_MS: a pause before
-- each request of a connection (0: back to back). Prints one RESULT line of JSON at the end.
local query = os.getenv("WRK_QUERY")
local key = os.getenv("WRK_KEY")
local think = tonumber(os.getenv("WRK_THINK_MS") or "0")
local ids = {}
local path = os.getenv("WRK_IDS")
if path and path ~= "" then
  for line in io.lines(path) do ids[#ids + 1] = line end
end
local threads = 0
local n = 0

function setup(thread)
  threads = threads + 1
  thread:set("offset", threads * 7919)
end

function init(args)
  n = offset or 0
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

function request()
  local body
  if #ids > 0 then
    n = n + 1
    body = '{"query":' .. query .. ',"variables":{"id":"' .. ids[(n % #ids) + 1] .. '"}}'
  else
    body = '{"query":' .. query .. '}'
  end
  return wrk.format(nil, nil, nil, body)
end

if think > 0 then
  function delay() return think end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.status, e.connect + e.read + e.write + e.timeout))
end
