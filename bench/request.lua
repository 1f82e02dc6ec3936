-- wrk script: one fixed request built from the environment: METHOD (POST),
-- BODY (form), AUTH (Authorization header), HDR_NAME/HDR_VALUE (one more header).
wrk.method = os.getenv("METHOD") or "POST"
local body = os.getenv("BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local name = os.getenv("HDR_NAME")
if name and name ~= "" then wrk.headers[name] = os.getenv("HDR_VALUE") end
