curl -H "Authorization: Bearer REFRESH_JWT" -H "Accept: application/json" -X POST https://sports-api.cloudbet.com/pub/v2/players/access-token
