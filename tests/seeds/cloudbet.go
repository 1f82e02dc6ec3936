package main
import (
	"fmt"
	"github.com/parnurzeal/gorequest"
)
func main() {
	refreshToken := "<REFRESH_JWT>"
	res, body, err := gorequest.New().
		Post("https://sports-api.cloudbet.com/pub/v2/players/access-token").
		Set("Authorization", fmt.Sprintf("Bearer %v", refreshToken)).
		Set("Accept", "application/json").
		SetDebug(true).
		End()
	fmt.Println(res, body, err)
}
