require "uri"
require "net/http"
require "json"

url = URI("https://<<api_base_path>>/oauth/token")

https = Net::HTTP.new(url.host, url.port);
https.use_ssl = true

request = Net::HTTP::Post.new(url)
request["Content-Type"] = "application/json"
payload = {
  client_id: "<<client_id>>",
  client_secret: "<<client_secret>>",
  grant_type: "client_credentials"
}
request.body = JSON.generate(payload)
response = https.request(request)

response_payload = JSON.parse(response.read_body)

puts "access_token #{response_payload['access_token']}"
puts "expired in #{response_payload['expires_in']} seconds"
