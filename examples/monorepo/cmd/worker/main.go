// Command worker is one of the example shop's services.
package main

import (
	"fmt"

	"example.com/shop/internal/shop"
)

func main() {
	fmt.Println(shop.Banner("worker"))
}
