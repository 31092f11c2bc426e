-- wrk script: POST a ~1 KB chat request. LT_STREAM=1 asks for a stream.
local stream = os.getenv("LT_STREAM") == "1"
local filler = string.rep("please summarise the water cycle for a school project. ", 16)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-loadtest-not-a-real-key"
local host = os.getenv("LT_HOST")
if host then wrk.headers["Host"] = host end
wrk.body = '{"model":"gpt-4o-mini","stream":' .. tostring(stream) ..
  ',"messages":[{"role":"system","content":"You are a tutor."},{"role":"user","content":"' .. filler .. '"}]}'
