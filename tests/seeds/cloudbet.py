import requests
import json

def get_access_token(refresh_token):
    response = requests.post(
        "https://sports-api.cloudbet.com/pub/v2/players/access-token",
        headers={"Authorization": "Bearer %s" % refresh_token},
    )
    access_token = response.json().get("token")
    return access_token

refresh_token = "<REFRESH_JWT>"
access_token = get_access_token(refresh_token)
print(access_token)
