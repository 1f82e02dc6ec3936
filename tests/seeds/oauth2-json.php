<?php

$curl = curl_init();
$payload = [
  "client_id" => "<<client_id>>",
  "client_secret" => "<<client_secret>>",
  "grant_type" => "client_credentials",
];

curl_setopt_array($curl, [
  CURLOPT_URL => "https://<<api_base_path>>/oauth/token",
  CURLOPT_RETURNTRANSFER => true,
  CURLOPT_ENCODING => "",
  CURLOPT_MAXREDIRS => 10,
  CURLOPT_TIMEOUT => 0,
  CURLOPT_FOLLOWLOCATION => true,
  CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
  CURLOPT_CUSTOMREQUEST => "POST",
  CURLOPT_POSTFIELDS => json_encode($payload),
  CURLOPT_HTTPHEADER => [
    "Content-Type: application/json"
  ],
]);

$response = curl_exec($curl);

curl_close($curl);
$responsePayload = json_decode($response, true);

echo "access_token {$response_payload['access_token']}" . PHP_EOL;
echo "expired in {$response_payload['expires_in']} seconds" . PHP_EOL;
