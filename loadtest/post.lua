-- wrk script: POST a ~1 KB chat request. LT_STREAM=1 asks for a stream.
local stream = os.getenv("LT_STREAM") == "1"
local filler = string.rep("please summarise the water cycle for a school project. ", 16)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-loadtest-not-a-real-key"
local host = os.getenv("LT_HOST")
-- an empty LT_HOST means "the URL's own host" (wrk's default), not an empty Host header
if host and host ~= "" then wrk.headers["Host"] = host end
wrk.body = '{"model":"gpt-4o-mini","stream":' .. tostring(stream) ..
  ',"messages":[{"role":"system","content":"You are a tutor."},{"role":"user","content":"' .. filler .. '"}]}'

-- LT_DELAY_MS: each connection waits this long before its next request, for a fixed rate
-- (rate = connections * 1000 / LT_DELAY_MS); latency is still measured per request.
local pause = tonumber(os.getenv("LT_DELAY_MS") or "")
if pause then
  function delay() return pause end
end

-- wrk's --latency table has no 95th percentile: print it (microseconds) for the scripts
function done(summary, latency, requests)
  io.write(string.format("p95_us %d\n", latency:percentile(95)))
end
