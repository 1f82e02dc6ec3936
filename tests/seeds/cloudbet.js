"use strict";
const fetch = require("node-fetch");

async function getAccessToken(refreshToken) {
  let request = await fetch(
    `https://sports-api.cloudbet.com/pub/v2/players/access-token`,
    {
      method: "POST",
      headers: { Authorization: `Bearer ${refreshToken}` }
    }
  );
  let response = await request;
  if (response.status === 200) {
    let responseObj = await request.json();
    return responseObj.token;
  } else {
    console.error(response);
    console.error("Something went wrong! Exiting..");
    process.exit(1);
  }
}

(async () => {
  let refreshToken = "<REFRESH_JWT>";
  let accessToken = await getAccessToken(refreshToken);
  console.log(accessToken);
})();
