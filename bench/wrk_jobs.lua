-- wrk script for the jobs gateway: every request a new job with its own Idempotency-Key.
--
--   wrk -t2 -c64 -d10s -s bench/wrk_jobs.lua http://127.0.0.1:P -- <prefix> <path> <api key>
--
-- Thread k reads "<prefix>.<k>" (one request per line: "<idempotency key>\t<body>", the
-- body being compact JSON), sends each line once, in order, and counts the answers: 202 new
-- (no Idempotent-Replayed header), 202 replayed, anything else. The body of every 202 goes
-- to "<prefix>.acks.<k>" (replays marked with "duplicate"), so the caller can check each
-- acknowledged job against the database. done() prints one line "WRK_RESULT {json}", the
-- same fields as wrk_presigned.lua.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local requests = {}
local count = 0
local index = 0
local acks
sent = 0
accepted = 0
duplicates = 0
others = 0
exhausted = 0

function init(args)
   local prefix, path, key = args[1], args[2], args[3]
   local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
      ["User-Agent"] = "bench-app/1.0",
   }
   acks = assert(io.open(prefix .. ".acks." .. tid, "w"))
   for line in io.lines(prefix .. "." .. tid) do
      local tab = line:find("\t", 1, true)
      headers["Idempotency-Key"] = line:sub(1, tab - 1)
      count = count + 1
      requests[count] = wrk.format("POST", path, headers, line:sub(tab + 1))
   end
end

function request()
   index = index + 1
   if index > count then
      exhausted = 1
      wrk.thread:stop()
      return requests[count]
   end
   sent = sent + 1
   return requests[index]
end

function response(status, headers, body)
   if status == 202 then
      if headers["idempotent-replayed"] or headers["Idempotent-Replayed"] then
         duplicates = duplicates + 1
         acks:write('{"duplicate":true}', "\n")
      else
         accepted = accepted + 1
         acks:write(body, "\n")
      end
   else
      others = others + 1
   end
end

function done(summary, latency, requests)
   local sent, accepted, duplicates, others, exhausted = 0, 0, 0, 0, 0
   for _, thread in ipairs(threads) do
      sent = sent + thread:get("sent")
      accepted = accepted + thread:get("accepted")
      duplicates = duplicates + thread:get("duplicates")
      others = others + thread:get("others")
      exhausted = exhausted + thread:get("exhausted")
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"sent":%d,"requests":%d,"duration_us":%d,"accepted":%d,"duplicates":%d,' ..
      '"non_200":%d,"exhausted_threads":%d,"socket_errors":%d,"timeouts":%d,' ..
      '"lat_mean_us":%.1f,"lat_max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
      '"p999_us":%d}\n',
      sent, summary.requests, summary.duration, accepted, duplicates, others, exhausted,
      e.connect + e.read + e.write, e.timeout, latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
