curl --location --request POST 'https://<<api_base_path>>/oauth/token' \
--header 'Content-Type: application/json' \
--data-raw '{
    "client_id": "<<client_id>>",
    "client_secret": "<<client_secret>>",
    "grant_type": "client_credentials"
}'
